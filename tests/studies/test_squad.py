"""Extractive QA (lib/data/squad.py, lib/models/qa.py, lib/evaluation/qa_postprocess.py): offset-mapping preprocessing, n-best post-processing, official EM/F1, input errors."""
import json

import numpy as np
import pytest
import torch

from lib.core.errors import LabError
from lib.data import squad as squad_data
from lib.evaluation import qa_postprocess
from lib.models import qa, registry
from lib.studies import squad

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok():
    return registry.load_tokenizer("all-MiniLM-L6-v2")


def _example(context, answer, qid="q1", question="What is the secret word?"):
    return {"id": qid, "title": "T", "context": context, "question": question,
            "answers": {"text": [answer], "answer_start": [context.index(answer)]}}


# ---------------------------------------------------------------- preprocessing
def test_long_context_windows_round_trip_the_answer_across_a_stride_boundary(tok):
    words = [f"w{i}" for i in range(60)]
    # the answer sits where window 1 ends and window 2 begins (the overlap), so it crosses a window boundary
    words[18:21] = ["purple", "elephant", "parade"]
    ctx = " ".join(words)
    ex = _example(ctx, "purple elephant parade")
    feats = qa.prepare_train_features(tok, [ex], max_length=40, stride=12)
    assert len(feats) >= 3  # the context really is cut into several overlapping windows
    holding, not_holding = [], []
    for f in feats:
        offs = [o for o in f["offset_mapping"] if o is not None]
        inside = offs[0][0] <= ctx.index("purple") and offs[-1][1] >= ctx.index("parade") + len("parade")
        (holding if inside else not_holding).append(f)
        assert len(f["input_ids"]) <= 40
    assert holding and not_holding
    a0, a1 = ctx.index("purple"), ctx.index("parade") + len("parade")
    partial = [f for f in not_holding if any(o and o[1] > a0 and o[0] < a1 for o in f["offset_mapping"])]
    assert partial  # a window boundary cuts through the answer: that window holds only part of it
    for f in holding:  # every window that holds the whole answer maps its label back to exactly the answer text
        s, e = f["start_positions"], f["end_positions"]
        assert ctx[f["offset_mapping"][s][0]:f["offset_mapping"][e][1]] == "purple elephant parade"
    for f in not_holding:  # the others point at [CLS]
        assert (f["start_positions"], f["end_positions"]) == (0, 0)
    # consecutive windows overlap: the last context characters of window k reappear in window k+1
    first = [o for o in feats[0]["offset_mapping"] if o is not None]
    second = [o for o in feats[1]["offset_mapping"] if o is not None]
    assert second[0][0] < first[-1][1]
    # question tokens and special tokens carry no offsets
    assert feats[0]["offset_mapping"][0] is None and all(f["example_id"] == "q1" for f in feats)


def test_features_tokenise_each_part_once_with_the_window_settings(tok):
    from types import SimpleNamespace
    words = [f"w{i}" for i in range(60)]
    words[50] = "banana"
    long_ex = _example(" ".join(words), "banana", "long")  # several windows, only the last ones hold the answer
    data = {"train": [long_ex], "val": [_example("the word is banana today", "banana", "short")], "test": [long_ex]}
    feats = squad.features(SimpleNamespace(MAX_LENGTH=40, STRIDE=12), tok, data)
    assert set(feats) == {"train", "val", "test"} and len(feats["val"]) == 1
    assert len(feats["train"]) >= 3 and all(len(f["input_ids"]) <= 40 for f in feats["train"])
    assert any(f["start_positions"] == 0 for f in feats["train"]) and any(f["start_positions"] > 0 for f in feats["train"])


def test_collate_pads_to_the_longest_feature(tok):
    exs = [_example("short context with answer here", "answer", "a"),
           _example("a much longer context " * 5 + "with the answer at the end", "answer", "b")]
    feats = qa.prepare_train_features(tok, exs, 64, 16)
    b = qa.collate(tok, feats)
    n = max(len(f["input_ids"]) for f in feats)
    assert b["input_ids"].shape == (2, n) and b["attention_mask"][0].sum() == len(feats[0]["input_ids"])



def test_collate_pads_hand_made_features_with_the_tokenizers_pad_id_on_the_right(tok):
    import copy
    feats = [{"input_ids": [101, 7, 8, 102, 9, 102], "attention_mask": [1] * 6, "token_type_ids": [0, 0, 0, 0, 1, 1],
              "start_positions": 4, "end_positions": 4, "example_id": "a", "offset_mapping": [None] * 4 + [(0, 3), None]},
             {"input_ids": [101, 5, 102, 6], "attention_mask": [1] * 4, "token_type_ids": [0, 0, 0, 1],
              "start_positions": 3, "end_positions": 3, "example_id": "b", "offset_mapping": [None] * 3 + [(0, 2)]},
             {"input_ids": [101, 102], "attention_mask": [1, 1], "token_type_ids": [0, 0],
              "start_positions": 0, "end_positions": 0, "example_id": "c", "offset_mapping": [None, None]}]
    t = copy.deepcopy(tok)  # a shallow copy would share (and change) the fixture's special tokens
    t.pad_token = "[UNK]"  # pad id 100: not 0, so the pad id really comes from the tokenizer
    t.padding_side = "left"  # the positions index unpadded tokens: collate pads on the right all the same
    b = qa.collate(t, feats)
    assert set(b) == {"input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions"}
    assert b["input_ids"].tolist() == [[101, 7, 8, 102, 9, 102], [101, 5, 102, 6, 100, 100],
                                       [101, 102, 100, 100, 100, 100]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]]
    assert b["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0]]
    assert b["start_positions"].tolist() == [4, 3, 0] and b["end_positions"].tolist() == [4, 3, 0]
    assert all(v.dtype == torch.long for v in b.values())
    assert t.padding_side == "left" and feats[1]["input_ids"] == [101, 5, 102, 6]  # inputs left as they were

# ---------------------------------------------------------------- post-processing
def test_postprocess_picks_the_best_valid_span():
    ctx = "alpha beta gamma delta"
    # tokens: 0 [CLS], 1 question, 2 [SEP], 3 alpha, 4 beta, 5 gamma, 6 delta, 7 [SEP]
    offs = [None, None, None, (0, 5), (6, 10), (11, 16), (17, 22), None]
    feat = {"example_id": "q", "offset_mapping": offs}
    start = np.array([9.0, 8.0, 0, 1.0, 3.0, 0.5, 0, 0])   # [CLS] and the question token score highest: not allowed
    end = np.array([9.0, 0, 0, 4.0, 0.2, 2.5, 1.0, 0])
    # valid pairs: (3,3)=5.0 (4,5)=5.5 (3,5)=3.5 (4,6)=4.0 ... ; (4,3) has end < start; best valid = beta gamma
    ex = {"id": "q", "context": ctx, "answers": {"text": ["beta gamma"], "answer_start": [6]}}
    assert qa_postprocess.postprocess([ex], [feat], [start], [end], n_best=20, max_answer_length=30) == {"q": "beta gamma"}
    # with max_answer_length 1 only single tokens qualify: alpha (1+4=5) beats beta (3+0.2) and gamma (0.5+2.5)
    assert qa_postprocess.postprocess([ex], [feat], [start], [end], n_best=20, max_answer_length=1) == {"q": "alpha"}


def test_postprocess_takes_the_best_span_over_all_windows():
    ctx = "one two three four"
    f1 = {"example_id": "q", "offset_mapping": [None, (0, 3), (4, 7), None]}
    f2 = {"example_id": "q", "offset_mapping": [None, (8, 13), (14, 18), None]}
    ex = {"id": "q", "context": ctx, "answers": {"text": ["four"], "answer_start": [14]}}
    s1, e1 = np.array([0, 2.0, 0, 0]), np.array([0, 2.0, 0, 0])      # "one": 4.0
    s2, e2 = np.array([0, 0, 3.0, 0]), np.array([0, 0, 2.5, 0])      # "four": 5.5
    assert qa_postprocess.postprocess([ex], [f1, f2], [s1, s2], [e1, e2]) == {"q": "four"}


# ---------------------------------------------------------------- metrics (hand-worked)
def test_normalisation_and_exact_match():
    assert qa_postprocess.normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert qa_postprocess.normalize_answer("an apple a day") == "apple day"
    assert qa_postprocess.exact_match("Denver Broncos", "the denver broncos.") == 1.0
    assert qa_postprocess.exact_match("Broncos", "Denver Broncos") == 0.0


def test_f1_hand_worked():
    # pred {cat, sat} vs gold {cat, sat, down}: P = 2/2, R = 2/3 -> F1 = 2*1*(2/3)/(1+2/3) = 0.8
    assert qa_postprocess.f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    # bag overlap counts repeats: pred x x y, gold x y y -> common 2, P = R = 2/3 -> F1 = 2/3
    assert qa_postprocess.f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert qa_postprocess.f1("nothing", "else") == 0.0
    assert qa_postprocess.f1("", "something") == 0.0


def test_squad_scores_take_the_max_over_golds_and_mean_over_questions():
    exs = [{"id": "1", "answers": {"text": ["Denver Broncos", "Broncos"]}},
           {"id": "2", "answers": {"text": ["in 1990", "1990s decade"]}}]
    preds = {"1": "broncos", "2": "1990"}
    scores, per = qa_postprocess.squad_scores(preds, exs)
    # q1: EM 1 (matches "Broncos"), F1 1. q2: EM 0; F1 vs "in 1990" = 2*1*0.5/1.5 = 2/3, vs "1990s decade" = 0
    assert per["1"] == {"em": 1.0, "f1": 1.0}
    assert per["2"]["em"] == 0.0 and per["2"]["f1"] == pytest.approx(2 / 3)
    assert scores["exact_match"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_embedding_similarity_identical_is_100_and_empty_is_0():
    emb = qa.Embedder("all-MiniLM-L6-v2")
    exs = [{"id": "1", "answers": {"text": ["Denver Broncos"]}}, {"id": "2", "answers": {"text": ["Paris"]}}]
    score, per = qa.embedding_similarity(emb, {"1": "Denver Broncos", "2": ""}, exs)
    assert per["1"] == pytest.approx(1.0, abs=1e-5) and per["2"] == 0.0
    assert score == pytest.approx(50.0, abs=1e-3)


# ---------------------------------------------------------------- input errors
def _squad_json(**qa_over):
    qa = {"id": "qid-7", "question": "Who?", "answers": [{"text": "Bob", "answer_start": 0}], **qa_over}
    return {"version": "1.1", "data": [{"title": "A", "paragraphs": [{"context": "Bob went home.", "qas": [qa]}]}]}


def test_valid_file_parses(tmp_path):
    p = tmp_path / "ok.json"
    p.write_text(json.dumps(_squad_json()))
    (ex,) = squad_data.load_file(p)
    assert ex["id"] == "qid-7" and ex["answers"] == {"text": ["Bob"], "answer_start": [0]}


def test_malformed_json_names_file_and_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"data": [\n{"title": "A",, }]}')
    with pytest.raises(LabError, match=r"bad\.json:2: malformed JSON"):
        squad_data.load_file(p)


def test_missing_field_names_the_question(tmp_path):
    d = _squad_json()
    del d["data"][0]["paragraphs"][0]["qas"][0]["question"]
    with pytest.raises(LabError, match=r"question qid-7: missing field 'question'"):
        squad_data.parse(d, "x.json")


def test_answer_start_mismatch_names_the_question():
    with pytest.raises(LabError, match=r"question qid-7: answer_start 4 does not match answer text 'Bob'"):
        squad_data.parse(_squad_json(answers=[{"text": "Bob", "answer_start": 4}]), "x.json")


def test_missing_file_is_a_lab_error(tmp_path):
    with pytest.raises(LabError, match="file not found"):
        squad_data.load_file(tmp_path / "nope.json")


# ---------------------------------------------------------------- the real dev file and its article split
def test_dev_file_and_article_disjoint_split(data_dir):
    d = data_dir
    exs = squad_data.load_dev(str(d))
    assert len(exs) == 10570 and len({e["title"] for e in exs}) == 48
    tr, ev = squad_data.split_by_article(exs, 8, seed=3)
    assert len(tr) + len(ev) == 10570
    assert not {e["title"] for e in tr} & {e["title"] for e in ev}
    assert len({e["title"] for e in ev}) == 8
    assert squad_data.split_by_article(exs, 8, seed=3)[1] == ev  # seeded
    with pytest.raises(LabError, match="ARTICLES: 48 articles held out"):
        squad_data.split_by_article(exs, 48)


def test_load_splits_records_the_caps_for_the_report_card(data_dir):
    """The three parts are capped by the lab's one rule (lib.data.sampling.cap) and each cap lands in P.meta["caps"],
    which the report card lists (it said "none (all data)" for a capped run before)."""
    from lib.running.params import Params
    from lib.studies import squad
    P = Params(DATA_SOURCE="dev_split", DATA_DIR=str(data_dir), ARTICLES={"eval": 8, "val": 4}, SEED=42,
               MAX_TRAIN_SAMPLES=3200, MAX_VAL_SAMPLES=120, MAX_EVAL_SAMPLES=0)
    parts = squad.load_splits(P)
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (3200, 120, 1909)
    assert P.meta["caps"] == ["MAX_TRAIN_SAMPLES=3200: 3200 of 7793 training questions",
                              "MAX_VAL_SAMPLES=120: 120 of 868 validation questions"]  # MAX_EVAL_SAMPLES 0: no cap


# ---------------------------------------------------------------- methods
def test_methods_trainable_parameters_and_prompt_logits_align(tok):
    # MiniLM-L6: 6 layers, hidden 384. LoRA r=8 on query+value: 12 adapters x (8*384 + 384*8) = 73,728,
    # plus the span head qa_outputs (384*2 + 2 = 770) -> 74,498. Prompt tuning: 20*384 + 770 = 8,450.
    lora = qa.create_model("all-MiniLM-L6-v2", "lora", lora_r=8, lora_targets=("query", "value"))
    assert registry.count_parameters(lora)["trainable"] == 12 * 2 * 8 * 384 + 770
    prompt = qa.create_model("all-MiniLM-L6-v2", "prompt", virtual_tokens=20)
    assert registry.count_parameters(prompt)["trainable"] == 20 * 384 + 770
    feats = qa.prepare_train_features(tok, [_example("the word is banana today", "banana")], 64, 16)
    b = qa.collate(tok, feats)
    s, e = qa.qa_logits(prompt, b)  # the 20 virtual positions are dropped: logits line up with the input tokens
    assert s.shape == e.shape == b["input_ids"].shape
    assert torch.isfinite(qa.span_loss(prompt, b))
    with pytest.raises(LabError, match="unknown method 'adapter'"):
        qa.create_model("all-MiniLM-L6-v2", "adapter")


class _CountingQA(torch.nn.Module):
    """A stand-in QA model: start logits = token id, end logits = -token id; counts its forward passes."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        import types
        self.calls += 1
        x = input_ids.float() + self.w
        return types.SimpleNamespace(start_logits=x, end_logits=-x)


def test_predict_logits_runs_the_model_once_per_batch_and_the_loss_is_hand_worked(tok):
    import math
    assert tok.pad_token_id == 0  # collate pads with transformers' collator: a real tokenizer (MiniLM pads with 0)
    feats = [{"input_ids": [1, 2], "attention_mask": [1, 1], "start_positions": 1, "end_positions": 0},
             {"input_ids": [3, 1, 2], "attention_mask": [1, 1, 1], "start_positions": 0, "end_positions": 1}]
    m = _CountingQA()
    s, e, loss = qa.predict_logits(m, tok, feats, batch_size=1)
    assert m.calls == 2  # two batches of one feature: one forward pass each (was two: logits, then the loss)
    assert [list(x) for x in s] == [[1.0, 2.0], [3.0, 1.0, 2.0]] and list(e[0]) == [-1.0, -2.0]
    # feature 0: start CE at 1 over logits (1, 2) = log(e+e^2) - 2; end CE at 0 over (-1, -2) = log(e^-1+e^-2) + 1
    l0 = (math.log(math.e + math.e ** 2) - 2 + math.log(math.exp(-1) + math.exp(-2)) + 1) / 2
    # feature 1: start at 0 over (3, 1, 2); end at 1 over (-3, -1, -2)
    l1 = (math.log(math.exp(3) + math.exp(1) + math.exp(2)) - 3
          + math.log(math.exp(-3) + math.exp(-1) + math.exp(-2)) + 1) / 2
    assert loss == pytest.approx((l0 + l1) / 2, rel=1e-5)
    m.calls = 0
    qa.predict_logits(m, tok, feats, batch_size=8)  # one batch, padded: padding is masked out of the loss
    assert m.calls == 1


def test_method_verdicts_need_a_gain_over_two_paired_standard_errors():
    base = {"method": "pretrained", "f1": 25.0, "per_question": {"a": {"f1": 0.0}, "b": {"f1": 0.5}, "c": {"f1": 0.0},
                                                                 "d": {"f1": 0.5}}}
    full = {"method": "full", "f1": 87.5, "per_question": {"a": {"f1": 1.0}, "b": {"f1": 1.0}, "c": {"f1": 1.0},
                                                           "d": {"f1": 0.5}}}
    prompt = {"method": "prompt", "f1": 37.5, "per_question": {"a": {"f1": 0.5}, "b": {"f1": 0.5}, "c": {"f1": 0.0},
                                                               "d": {"f1": 0.5}}}
    v = squad.method_verdicts([base, full, prompt])
    # full: differences 100, 50, 100, 0 -> mean 62.5, sd 47.87, se 23.94: 62.5 > 47.9
    assert v[0] == "full: F1 87.5 beats pretrained (25.0): +62.5 F1, paired standard error 23.9 over 4 questions"
    # prompt: differences 50, 0, 0, 0 -> mean 12.5, sd 25, se 12.5: 12.5 < 25
    assert v[1] == "prompt: F1 37.5 does NOT clearly beat pretrained (25.0): +12.5 F1, paired standard error 12.5 over 4 questions"
    assert squad.method_verdicts([full]) == []
