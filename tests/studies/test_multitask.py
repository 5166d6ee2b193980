"""lib/data/sentence_tasks.py, lib/models/multitask_bert.py, lib/training/multitask_schedules.py, lib/studies/multitask.py and multitask_report.py: heads, losses, samplers, SimCSE, score formula, mappings, real-file loaders."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lib.core.errors import LabError
from lib.data import sentence_tasks
from lib.models import multitask_bert
from lib.running import claims
from lib.studies import multitask, multitask_report
from lib.training import multitask_schedules

torch.set_num_threads(1)


# ---------------------------------------------------------------- a tiny fake encoder (no model download)

class _Out:
    def __init__(self, h):
        self.last_hidden_state = h


class FakeEncoder(torch.nn.Module):
    """Embedding lookup: enough to exercise pooling and heads."""

    def __init__(self, vocab=50, hidden=8):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, hidden)

    def forward(self, input_ids, attention_mask):
        return _Out(self.emb(input_ids))


class FakeTokenizer:
    def __call__(self, texts, padding=True, truncation=True, max_length=16, return_tensors="pt"):
        ids = [[1 + (sum(map(ord, w)) % 48) for w in t.split()][:max_length] or [1] for t in texts]
        n = max(map(len, ids))
        return {"input_ids": torch.tensor([x + [0] * (n - len(x)) for x in ids]),
                "attention_mask": torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x in ids])}


def _model(**kw):
    torch.manual_seed(0)
    return multitask_bert.MultitaskBERT(FakeEncoder(), FakeTokenizer(), hidden=8, proj_dim=4, dropout=0.0, **kw)


def test_head_shapes_and_losses():
    m = _model()
    sst = {"texts": ["a b c", "d e", "f"], "y": np.array([0, 4, 2])}
    per, logits = multitask_bert.task_losses(m, "sst", sst)
    assert logits.shape == (3, 5) and per.shape == (3,)
    assert torch.allclose(per, torch.nn.functional.cross_entropy(logits, torch.tensor([0, 4, 2]), reduction="none"))
    pair = {"s1": ["a b", "c"], "s2": ["a", "d e f"], "y": np.array([1.0, 0.0])}
    per, logit = multitask_bert.task_losses(m, "para", pair)
    assert logit.shape == (2,) and per.shape == (2,)
    # BCE by hand: -[y log s(x) + (1 - y) log(1 - s(x))]
    s = torch.sigmoid(logit)
    assert torch.allclose(per, torch.stack([-torch.log(s[0]), -torch.log(1 - s[1])]), atol=1e-6)
    sts = {"s1": ["a b", "c"], "s2": ["a", "d e f"], "y": np.array([5.0, 2.5])}
    per, score = multitask_bert.task_losses(m, "sts", sts, sts_loss="l1")
    assert torch.allclose(per, (score - torch.tensor([1.0, 0.5])).abs())
    per, score = multitask_bert.task_losses(m, "sts", sts, sts_loss="mse")
    assert torch.allclose(per, (score - torch.tensor([1.0, 0.5])) ** 2)


def test_cosine_sts_head_and_mean_pooling():
    m = _model(sts_head="cosine")
    assert m.sts is None
    e = m.embed(["a b", "a b"])
    assert torch.allclose(m.sts_score(e[:1], e[1:]), torch.tensor([1.0]), atol=1e-6)  # same sentence -> cos 1
    # mean pooling ignores padding: "a" alone equals "a" padded inside a batch with a longer sentence
    alone = m.embed(["a"])
    padded = m.embed(["a", "b c d e"])[:1]
    assert torch.allclose(alone, padded, atol=1e-6)


def test_shared_projection_and_ffn():
    m = _model(shared_proj=True, sst_ffn=True)
    assert m.sts.proj1 is m.para.proj1 and m.sts.proj2 is m.para.proj2
    assert m.sts.interact is not m.para.interact
    n_shared = sum(p.numel() for p in m.parameters())
    n_sep = sum(p.numel() for p in _model(sst_ffn=True).parameters())
    assert n_sep - n_shared == 2 * (8 * 4 + 4)  # two Linear(8, 4) not duplicated
    assert isinstance(m.sst_ffn, torch.nn.Sequential)


def test_pair_head_by_hand():
    h = multitask_bert.PairHead(2, 2)
    with torch.no_grad():
        h.proj1.weight.copy_(torch.eye(2)); h.proj1.bias.zero_()
        h.proj2.weight.copy_(2 * torch.eye(2)); h.proj2.bias.zero_()
        h.interact.weight.copy_(torch.tensor([[1.0, -1.0]])); h.interact.bias.fill_(0.5)
    # e1 = (1, 2), e2 = (3, 1): proj1 = (1, 2), proj2 = (6, 2), product (6, 4), 6 - 4 + 0.5 = 2.5
    assert h(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 1.0]])).item() == pytest.approx(2.5)


def test_head_lr_groups_reach_only_the_heads():
    from lib.training import train
    model = torch.nn.ModuleDict({"encoder": torch.nn.Linear(3, 3), "sst": torch.nn.Linear(3, 5),
                                 "sts": torch.nn.Linear(3, 1)})
    cfg = train.TrainConfig(lr=1e-5, lr_groups=multitask_bert.head_lr_groups(1e-3))
    opt = train.make_optimizer(model, cfg)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr_of[id(model["encoder"].weight)] == 1e-5 and lr_of[id(model["encoder"].bias)] == 1e-5
    assert lr_of[id(model["sst"].weight)] == 1e-3 and lr_of[id(model["sts"].bias)] == 1e-3
    assert multitask_bert.head_lr_groups(0) == {}


def test_simcse_loss_hand_computed():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # cosines: row 0 -> (1, 1/sqrt2), row 1 -> (0, 1/sqrt2); temperature 0.5 doubles them
    # row 0: -log(e^2 / (e^2 + e^1.4142)) = log(1 + e^-0.5858) = 0.44255
    # row 1: -log(e^1.4142 / (e^0 + e^1.4142)) = log(1 + e^-1.4142) = 0.21755
    assert multitask_bert.simcse_loss(z1, z2, 0.5).item() == pytest.approx((0.44255 + 0.21755) / 2, abs=1e-4)
    assert multitask_bert.simcse_loss(z1, z2, 0.5).item() == pytest.approx(
        (math.log(1 + math.exp(math.sqrt(2) - 2)) + math.log(1 + math.exp(-math.sqrt(2)))) / 2, abs=1e-6)


@pytest.mark.parametrize("schedule", ["round_robin", "round_robin_norm"])
def test_round_robin_visits_every_example_once_in_proportion(schedule):
    sizes = {"sst": 30, "para": 120, "sts": 30}
    b = multitask_schedules.MultitaskBatches(sizes, schedule, batch_size=10, seed=1)
    assert len(b) == 6  # ceil(180 / (10 * 3))
    for _ in range(2):  # two epochs, re-shuffled
        steps = list(b)
        assert len(steps) == 6
        for t, n in sizes.items():
            seen = np.concatenate([s[t] for s in steps])
            assert sorted(seen.tolist()) == list(range(n))  # each example exactly once
        assert all(len(s["sst"]) == 5 and len(s["para"]) == 20 and len(s["sts"]) == 5 for s in steps)  # 1 : 4 : 1


def test_round_robin_uneven_sizes_and_other_schedules():
    b = multitask_schedules.MultitaskBatches({"sst": 7, "para": 23, "sts": 5}, "round_robin", batch_size=4, seed=0)
    steps = list(b)
    assert len(steps) == 3  # ceil(35 / 12)
    assert [len(s["para"]) for s in steps] == [8, 8, 7] and [len(s["sts"]) for s in steps] == [2, 2, 1]
    seq = list(multitask_schedules.MultitaskBatches({"sst": 5, "para": 3, "sts": 4}, "sequential", batch_size=2, seed=0))
    assert [list(s) for s in seq] == [["sst"]] * 3 + [["para"]] * 2 + [["sts"]] * 2
    summed = list(multitask_schedules.MultitaskBatches({"sst": 5, "para": 12, "sts": 4}, "summed", batch_size=4, seed=0))
    assert len(summed) == 3 and all(len(s[t]) == 4 for s in summed for t in ("sst", "para", "sts"))
    assert sorted(np.concatenate([s["para"] for s in summed]).tolist()) == list(range(12))
    with pytest.raises(LabError):
        multitask_schedules.MultitaskBatches({"sst": 1}, "bogus", 2)


def test_length_grouped_schedules_visit_every_example_once_in_pieces_of_similar_length():
    """With lengths, each task's pieces come from length-sorted mega-batches (far less padding than random pieces),
    still every example once per epoch, a new order each epoch, the same orders for the same seed."""
    rng = np.random.default_rng(0)
    sizes = {"sst": 300, "para": 240, "sts": 60}
    lengths = {t: rng.integers(3, 60, n) for t, n in sizes.items()}
    data = sentence_tasks.TaskData({"sst": pd.DataFrame({"sentence": ["a b c", "a"], "y": [0, 1]}),
                        "para": pd.DataFrame({"s1": ["a b", "a"], "s2": ["c", "d e f"], "y": [0, 1]}),
                        "sts": pd.DataFrame({"s1": ["a"], "s2": ["b"], "y": [1.0]})})
    assert {t: v.tolist() for t, v in data.lengths().items()} == {"sst": [3, 1], "para": [3, 4], "sts": [2]}

    def spread(steps, t):  # mean over pieces of (longest - shortest) length
        return np.mean([np.ptp(lengths[t][s[t]]) for s in steps if t in s])

    for schedule, k in (("round_robin", 7), ("sequential", 10 + 8 + 2)):
        grouped = multitask_schedules.MultitaskBatches(sizes, schedule, batch_size=30, seed=3, lengths=lengths)
        plain = multitask_schedules.MultitaskBatches(sizes, schedule, batch_size=30, seed=3)
        e1, e2 = list(grouped), list(grouped)
        assert len(e1) == len(grouped) == k
        for t, n in sizes.items():
            assert sorted(np.concatenate([s[t] for s in e1 if t in s]).tolist()) == list(range(n))
            pieces = sum(t in st for st in e1)  # sequential's 2 STS pieces each span half of the sorted range
            assert spread(e1, t) < (0.35 if pieces >= 7 else 0.7) * spread(list(plain), t)  # random: nearly all of it
        assert any(not np.array_equal(a[t], b[t]) for a, b in zip(e1, e2) for t in a)  # re-shuffled each epoch
        again = list(multitask_schedules.MultitaskBatches(sizes, schedule, batch_size=30, seed=3, lengths=lengths))
        assert all(np.array_equal(a[t], b[t]) for a, b in zip(e1, again) for t in a)
    with pytest.raises(LabError, match="do not match"):
        multitask_schedules.MultitaskBatches({"sst": 3}, "round_robin", 2, lengths={"sst": [1, 2]})


def test_round_robin_normalisation_of_the_loss():
    data = sentence_tasks.TaskData({"sst": pd.DataFrame({"sentence": ["a", "b", "c", "d"], "y": [0, 1, 2, 3]}),
                        "para": pd.DataFrame({"s1": ["a", "b"], "s2": ["c", "d"], "y": [0, 1]}),
                        "sts": pd.DataFrame({"s1": ["a", "b"], "s2": ["c", "d"], "y": [0.0, 5.0]})})
    m = _model()
    step = {"sst": np.arange(4), "para": np.arange(2), "sts": np.arange(2)}
    per = {t: multitask_bert.task_losses(m, t, data.batch(t, step[t]))[0] for t in step}
    norm = multitask.MultitaskLoss(m, data, multitask.Variant(schedule="round_robin_norm"), multitask.Settings()).loss(m, step)
    assert norm.item() == pytest.approx(sum(p.mean().item() for p in per.values()), rel=1e-5)
    un = multitask.MultitaskLoss(m, data, multitask.Variant(schedule="round_robin"), multitask.Settings()).loss(m, step)
    ref = (4 + 2 + 2) / 3  # the step's mean chunk size
    assert un.item() == pytest.approx(sum(p.sum().item() for p in per.values()) / ref, rel=1e-5)


def test_overall_score_formula():
    assert sentence_tasks.overall_score(0.5, 0.75, 0.52) == pytest.approx((0.5 + 0.75 + 0.76) / 3)
    assert sentence_tasks.overall_score(0.482, 0.808, 0.814) == pytest.approx(0.732, abs=5e-4)  # study 003's row
    assert sentence_tasks.overall_score(0, 0, -1) == 0 and sentence_tasks.overall_score(1, 1, 1) == 1


def test_cfimdb_and_sick_mappings():
    assert sentence_tasks.cfimdb_to_sst([0, 1, 1], "polar").tolist() == [0, 4, 4]
    assert sentence_tasks.cfimdb_to_sst([0, 1], "nonpolar").tolist() == [1, 3]
    assert sentence_tasks.sick_to_sts([1.0, 5.0, 3.0, 4.5]).tolist() == [0.0, 5.0, 2.5, 4.375]
    with pytest.raises(LabError):
        sentence_tasks.cfimdb_to_sst([0, 2])
    with pytest.raises(LabError):
        sentence_tasks.cfimdb_to_sst([0, 1], "neutral")
    with pytest.raises(LabError):
        sentence_tasks.sick_to_sts([0.5])


def test_pearson_and_variants():
    assert multitask.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert multitask.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert set(multitask.VARIANTS) >= {"baseline", "round_robin", "simcse", "simcse_lora"}
    with pytest.raises(LabError):
        multitask.variant("nope")


def test_predict_keeps_order_and_confident_errors():
    m = _model()
    frame = pd.DataFrame({"sentence": ["a b c d e", "x", "y z"], "y": [0, 1, 2]})
    probs, loss = multitask_bert.predict(m, "sst", frame, batch_size=2)
    direct = m.sst_logits(m.embed(frame["sentence"].tolist())).softmax(-1).detach().numpy()
    assert np.allclose(probs, direct, atol=1e-5) and np.isfinite(loss)
    dev = sentence_tasks.TaskData({"sst": frame, "para": pd.DataFrame({"s1": ["a", "b"], "s2": ["c", "d"], "y": [1, 0]}),
                       "sts": pd.DataFrame({"s1": ["a", "b"], "s2": ["c", "d"], "y": [1.0, 4.0]})})
    preds = {"sst": np.array([[0.1, 0.9, 0, 0, 0], [0.2, 0.8, 0, 0, 0], [0, 0, 1.0, 0, 0]]),
             "para": np.array([0.3, 0.1]), "sts": np.array([4.0, 3.5])}
    err = multitask.confident_errors(dev, preds, n=5)
    assert err["sst"]["sentence"].tolist() == ["a b c d e"]  # the only wrong one (class 1 vs gold 0)
    assert err["para"]["P(duplicate)"].tolist() == [0.3]
    assert err["sts"]["gold"].tolist() == [1.0, 4.0]  # errors 3.0 then 0.5


# ---------------------------------------------------------------- the real files

def _minbert(data_dir):
    return data_dir  # the data_dir fixture checks every dataset (LAB_REQUIRE_DATA=1 turns a missing one into a failure)


def test_loaders_on_real_files(data_dir):
    d = _minbert(data_dir)
    sst = sentence_tasks.read("sst", "train", d).df
    assert len(sst) == 8544 and list(sst.columns) == ["id", "sentence", "sentiment"]
    assert sst["sentiment"].value_counts().sort_index().tolist() == [1092, 2218, 1624, 2322, 1288]
    assert not sst["sentence"].str.startswith(" ").any()  # the leading space is stripped
    sts = sentence_tasks.read("sts", "dev", d).df
    assert len(sts) == 863 and sts["similarity"].between(0, 5).all()
    cf = sentence_tasks.read("cfimdb", "dev", d).df
    assert cf["sentiment"].value_counts().sort_index().tolist() == [123, 122]


def test_odd_test_student_headers(data_dir):
    d = _minbert(data_dir)
    for task, n in (("sst", 2210), ("cfimdb", 488)):  # header "0<TAB><TAB>id<TAB>sentence"
        df = sentence_tasks.read(task, "test", d).df
        assert len(df) == n and list(df.columns) == ["id", "sentence"]
        assert df["id"].str.fullmatch(r"[0-9a-f]{25}").all()
    assert sentence_tasks.read("sst", "test", d).df["sentence"].iloc[0] == "Effective but too-tepid biopic"
    sts = sentence_tasks.read("sts", "test", d).df  # ordinary header, no label
    assert len(sts) == 1725 and list(sts.columns) == ["id", "sentence1", "sentence2"]


def test_quora_rows_and_split(data_dir):
    d = _minbert(data_dir)
    with pytest.raises(LabError, match=r"quora-dev.csv:2577: is_duplicate"):
        sentence_tasks.read("quora", "dev", d)
    tb = sentence_tasks.read("quora", "dev", d, on_bad="drop")
    assert len(tb.df) == 20212 and [n for n, _ in tb.dropped] == [2577, 14222]
    assert tb.df["is_duplicate"].value_counts().sort_index().tolist() == [12627, 7585]  # "0.0"/"1.0" read as 0/1
    assert tb.df["is_duplicate"].dtype.kind == "i"
    tr, ev = sentence_tasks.quora_split(tb.df, 4000, seed=0)
    assert len(tr) + len(ev) == len(tb.df) and 4000 <= len(ev) < 4200
    q_tr = set(tr["sentence1"].str.lower()) | set(tr["sentence2"].str.lower())
    q_ev = set(ev["sentence1"].str.lower()) | set(ev["sentence2"].str.lower())
    assert not q_tr & q_ev  # no question on both sides


def test_sick_loader(data_dir):
    s = sentence_tasks.read_sick(data_dir)
    assert len(s) == 9840 and s["similarity"].min() == 0.0 and s["similarity"].max() == 5.0
    assert np.allclose(s["similarity"], (s["relatedness"] - 1) * 1.25)
    assert s["set"].value_counts().to_dict() == {"TEST": 4906, "TRAIN": 4439, "TRIAL": 495}


def test_cosine_initialised_pair_head_starts_as_the_cosine():
    h = multitask_bert.PairHead(hidden=3, proj=3, init="cosine")
    e1, e2 = torch.tensor([[3.0, 4.0, 0.0]]), torch.tensor([[4.0, 3.0, 0.0]])
    # cosine = (12 + 12) / (5 * 5) = 0.96
    assert float(h(e1, e2)) == pytest.approx(0.96)
    with pytest.raises(LabError):
        multitask_bert.PairHead(hidden=3, proj=2, init="cosine")
    with pytest.raises(LabError):
        multitask_bert.PairHead(hidden=3, proj=3, init="xavier")


def test_apply_warm_start_sets_the_sst_probe_and_the_para_scale():
    m = multitask_bert.MultitaskBERT(FakeEncoder(), FakeTokenizer(), hidden=8, dropout=0.0, pair_init="cosine")
    ws = {"sst_weight": np.arange(40, dtype=np.float32).reshape(5, 8), "sst_bias": np.ones(5, np.float32),
          "para_scale": 10.0, "para_bias": -8.0}
    assert multitask_bert.apply_warm_start(m, ws) == ["sst", "para"]
    e = torch.zeros(1, 8)
    e[0, 1] = 1.0  # one-hot on dimension 1 -> logits = column 1 of the weight + bias = (1, 9, 17, 25, 33) + 1
    assert m.sst_logits(e).tolist()[0] == pytest.approx([2, 10, 18, 26, 34])
    # PARA logit = 10 * cos + (-8): identical embeddings (cos 1) -> 2; orthogonal ones (cos 0) -> -8
    e2 = torch.zeros(1, 8)
    e2[0, 2] = 1.0
    assert float(m.para_logit(e, e)) == pytest.approx(2.0)
    assert float(m.para_logit(e, e2)) == pytest.approx(-8.0)
    ffn = multitask_bert.MultitaskBERT(FakeEncoder(), FakeTokenizer(), hidden=8, dropout=0.0, sst_ffn=True)
    assert multitask_bert.apply_warm_start(ffn, ws) == []  # FFN before the SST head, random pair head: no probe fits them


def test_baseline_table_chance_and_majority():
    dev = sentence_tasks.TaskData({"sst": pd.DataFrame({"sentence": list("abcd"), "y": [1, 1, 1, 3]}),
                       "para": pd.DataFrame({"s1": list("abcde"), "s2": list("abcde"), "y": [0, 0, 1, 1, 1]}),
                       "sts": pd.DataFrame({"s1": ["a"], "s2": ["b"], "y": [2.0]})})
    t = multitask_report.baseline_table(dev, {"sst_acc": 0.5, "para_acc": 0.8, "sts_r": 0.6})
    assert t.loc["majority class", "SST acc"] == 0.75 and t.loc["majority class", "PARA acc"] == 0.6
    assert t.loc["chance", "overall"] == pytest.approx((0.2 + 0.5 + 0.5) / 3)
    assert t.iloc[2]["overall"] == pytest.approx((0.5 + 0.8 + 0.8) / 3)


# ---------------------------------------------------------------- notebook 06's report (hand-made inputs)

def test_study_rows_overall_by_the_leaderboard_formula():
    rows = multitask_report.study_rows()
    assert len(rows) == len(multitask_report.STUDY_ROWS) and rows[0]["source"] == "002 baseline (dev)"
    assert math.isclose(rows[0]["overall"], (0.50 + 0.75 + (0.44 + 1) / 2) / 3)  # 0.65667
    assert math.isclose(rows[5]["overall"], 0.732, abs_tol=5e-4)  # study 003 reports 0.732 for SimCSE + full model
    assert "overall" not in multitask_report.STUDY_ROWS[0]  # the constant is left as the studies report it


def _result(name, sst, para, sts):
    m = {"sst_acc": sst, "para_acc": para, "sts_r": sts, "overall": sentence_tasks.overall_score(sst, para, sts)}
    return multitask.Result(name, multitask.variant(name), m, None, None, [], 10.0, 2.0, 4, 64, {"trainable": 7})


def test_headline_metrics_notes_hand_made():
    from lib.running.params import Params
    a, b = _result("baseline", 0.4, 0.8, 0.6), _result("cosine", 0.3, 0.9, 0.7)
    runs = multitask.VariantRuns([a, b], best=b, best_model=None, probe={"sst_acc": 0.2})
    info = {"dropped": {"quora/dev": [(3, "no label"), (9, "no label")]}, "quora_pairs": 100}
    P = Params(WARM_START="all", MAX_TRAIN_SAMPLES=[0, 0, 0], MAX_EVAL_SAMPLES=0)
    headline, metrics, notes = multitask_report.headline_metrics_notes(P, runs, info)
    assert headline == {"best_overall": b.metrics["overall"], "worst_sst_acc": 0.3, "worst_para_acc": 0.8,
                        "worst_sts_r": 0.6}
    assert metrics["variants"]["baseline"] == {**a.metrics, "train_seconds": 10.0, "eval_seconds": 2.0, "steps": 4,
                                               "examples": 64, "trainable": 7}
    assert metrics["best_variant"] == "cosine" and metrics["baseline_pretrained_probe"] == {"sst_acc": 0.2}
    assert metrics["data"] == {"quora_pairs": 100} and metrics["dropped_rows"] == {"quora/dev": 2}
    assert len(notes) == 3 and "shared warm start" in notes[2] and "every SST training sentence" in notes[2]
    P = Params(WARM_START="", MAX_TRAIN_SAMPLES=[0, 0, 0], MAX_EVAL_SAMPLES=0, ENCODER_DROPOUT=0.0, SIMCSE={"dropout": 0.1})
    assert multitask_report.headline_metrics_notes(P, runs, info)[2][2] == (
        "encoder dropout 0 in the task losses (the checkpoint's own replaced: faster on CPU, lib.running.bench dropout); SimCSE's "
        "passes drop with 0.1, its augmentation")


def test_evaluation_examples_do_not_depend_on_the_training_caps(data_dir):
    """prepare() draws the evaluation caps from their own rng: two runs with other training caps score the same
    dev examples (so presets compare on one dev sample); read_sst_train is every SST training sentence."""
    a = multitask.prepare(data_dir, ["baseline"], 4000, [0, 0, 0], 50, "drop", 7)
    caps = []  # every cap that applied, for the report card
    b = multitask.prepare(data_dir, ["baseline"], 4000, [30, 40, 20], 50, "drop", 7, caps=caps)
    assert caps == ["MAX_TRAIN_SAMPLES[0]=30: 30 of 8544 SST training sentences",
                    "MAX_TRAIN_SAMPLES[1]=40: 40 of 16212 Quora training pairs",
                    "MAX_TRAIN_SAMPLES[2]=20: 20 of 6040 STS training pairs",
                    "MAX_EVAL_SAMPLES=50: 50 of 1101 SST dev sentences",
                    "MAX_EVAL_SAMPLES=50: 50 of 4000 Quora evaluation pairs",
                    "MAX_EVAL_SAMPLES=50: 50 of 863 STS dev pairs"]
    for t in sentence_tasks.TASKS:
        assert a[2].frames[t].equals(b[2].frames[t]) and len(a[2].frames[t]) == 50
    assert len(b[0].frames["sst"]) == 30
    full = multitask.read_sst_train(data_dir, "drop")
    assert len(full) == len(a[0].frames["sst"]) == 8544 and set(full["y"]) == {0, 1, 2, 3, 4}


def test_variant_verdicts_say_plainly_when_a_variant_does_not_beat_its_start():
    a, b = _result("baseline", 0.4, 0.8, 0.6), _result("cosine", 0.5, 0.9, 0.7)
    probe = {"sst_acc": 0.45, "para_acc": 0.8, "sts_r": 0.65}
    probe["overall"] = sentence_tasks.overall_score(0.45, 0.8, 0.65)
    v = multitask_report.variant_verdicts(multitask.VariantRuns([a, b], best=b, best_model=None, probe=probe))
    assert v[0].startswith("baseline: overall 0.667 does NOT beat the pretrained warm start")
    assert v[0].endswith("below it on sst_acc 0.400 < 0.450, sts_r 0.600 < 0.650")
    assert v[1] == f"cosine: overall 0.750 beats the pretrained warm start (no fine-tuning) ({probe['overall']:.3f})"
    chance = multitask_report.variant_verdicts(multitask.VariantRuns([a], best=a, best_model=None, probe=None))
    assert chance == ["baseline: overall 0.667 beats chance (0.400)"]


def test_dev_curves_draw_the_warm_start_line():
    from types import SimpleNamespace
    r = _result("cosine", 0.5, 0.9, 0.7)
    r.history = SimpleNamespace(evals=[{"step": 24, "overall": 0.71}])
    fig = multitask_report.dev_curves([r], probe={"overall": 0.699})
    ax = fig.axes[0]
    assert [tuple(line.get_ydata()) for line in ax.lines] == [(0.699, 0.699), (0.71,)]
    assert ax.get_legend_handles_labels()[1] == ["warm start (no fine-tuning)", "cosine"]


def test_score_standard_errors_by_hand():
    n = {"sst": 100, "para": 100, "sts": 100}
    m = {"sst_acc": 0.5, "para_acc": 0.5, "sts_r": 0.0}
    assert multitask_report.score_se(m, n, "sst_acc") == pytest.approx(0.05)  # sqrt(0.25 / 100)
    assert multitask_report.score_se(m, n, "sts_r") == pytest.approx(0.1)  # (1 - 0) / sqrt(100)
    # overall = (SST + PARA + (r + 1) / 2) / 3: sqrt(0.05^2 + 0.05^2 + 0.05^2) / 3
    assert multitask_report.score_se(m, n, "overall") == pytest.approx(math.sqrt(3 * 0.0025) / 3)


def test_comparison_verdicts_agree_disagree_or_too_small_to_call():
    n = {"sst": 100, "para": 100, "sts": 100}
    runs = multitask.VariantRuns([_result("baseline", 0.5, 0.5, 0.0), _result("round_robin", 0.6, 0.6, 0.0),
                           _result("cosine", 0.6, 0.6, 0.05), _result("simcse", 0.5, 0.5, 0.0),
                           _result("simcse_lora_noffn", 0.7, 0.7, 0.2)], best=None, best_model=None)
    lines = {line.split("claim ")[1].split(")")[0]: line for line in multitask_report.comparison_verdicts(runs, n, claims.variant_pairs())}
    # the registry's comparisons among these five variants (lib.running.claims); the LoRA timing is the scorecard's
    assert sorted(lines) == sorted(["mt-round-robin", "mt-cosine-sts", "mt-simcse", "mt-simcse-sts", "mt-para-flat",
                                    "mt-lora-close"])
    # round robin: overall 0.500 -> 0.567, +0.067 against a standard error of ~0.041: the study's direction
    assert ("(baseline -> round_robin): overall 0.500 -> 0.567 (+0.067, standard error of the difference ~0.041): "
            "agrees with the study") in lines["mt-round-robin"]
    assert "training 10 s vs 10 s" in lines["mt-round-robin"]
    assert "sts_r 0.000 -> 0.050" in lines["mt-cosine-sts"] and "too small to call" in lines["mt-cosine-sts"]
    assert "goes against the study" in lines["mt-simcse"]  # SimCSE lowered overall, the study found it raised it
    assert "outside ±0.01: goes against the study" in lines["mt-lora-close"]  # LoRA far above full fine-tuning
    assert "para_acc 0.600 -> 0.500" in lines["mt-para-flat"] and "outside ±0.02" in lines["mt-para-flat"]
    only_two = multitask.VariantRuns(runs.results[:2], best=None, best_model=None)
    assert len(multitask_report.comparison_verdicts(only_two, n, claims.variant_pairs())) == 1  # pairs whose variants did not both run are skipped
