"""Decoders: pad token / padding side, the label parser, LoRA adapter round trip, 4-bit loading on CPU."""
import pytest
import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import LlamaConfig, LlamaForSequenceClassification

from lib.models import decoders, registry
from lib.studies import emotion, emotion_decoders

L = emotion.EMOTIONS


class _Tok:
    """The tokenizer attributes prepare_tokenizer touches, for a decoder that ships without a pad token."""
    pad_token = None
    eos_token = "</s>"
    unk_token = "<unk>"
    padding_side = "left"


def test_pad_token_reuses_eos_and_sets_side_without_resizing():
    tok = decoders.prepare_tokenizer(_Tok(), "right")
    assert tok.pad_token == "</s>" and tok.padding_side == "right"
    no_eos = _Tok()
    no_eos.eos_token = None
    assert decoders.prepare_tokenizer(no_eos, "left").pad_token == "<unk>"


def _tiny_classifier(pad_id=0):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, num_labels=3, pad_token_id=pad_id)
    return LlamaForSequenceClassification(cfg).eval()


def test_classifier_pools_last_non_pad_token_whatever_the_padding():
    model = _tiny_classifier(pad_id=0)
    seq = torch.tensor([[5, 7, 9, 11]])
    alone = model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits
    padded = torch.tensor([[5, 7, 9, 11, 0, 0]])  # right padding with the pad id
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    assert torch.allclose(model(input_ids=padded, attention_mask=mask).logits, alone, atol=1e-5)


@pytest.mark.parametrize("text, found, dropped", [
    ("joy, optimism", {"joy", "optimism"}, []),
    ("Joy, Optimism.", {"joy", "optimism"}, []),
    ("1. Sad\n2. angry and hopeful", {"sadness", "anger"}, ["hopeful"]),
    ("none", set(), []),
    ("None of these.", set(), ["none of these"]),
    ("The tweet expresses fear; surprise!", {"fear", "surprise"}, []),
    ("- love\n- trust\n\nExplanation: the author adores her team, confusing", {"love", "trust"}, []),
    ("happiness | disgusted | banana", {"joy", "disgust"}, ["banana"]),
])
def test_label_parser_on_messy_generations(text, found, dropped):
    got, drop, needed = decoders.parse_labels(text, L)
    assert got == found and drop == dropped
    assert needed == (text != ", ".join(sorted(found, key=L.index)) and text.lower() != "none")


def test_answers_to_matrix_counts_cleaning():
    y, stats = decoders.answers_to_matrix(["joy", "Sad!", "banana"], L)
    assert y[0, L.index("joy")] == 1 and y[1, L.index("sadness")] == 1 and y[2].sum() == 0
    assert stats["needed_cleaning"] == 2 and stats["dropped_words"] == 1


def test_lora_adapter_save_reload_gives_identical_predictions(tmp_path):
    model = get_peft_model(_tiny_classifier(), LoraConfig(r=4, lora_alpha=8, task_type=TaskType.SEQ_CLS,
                                                          target_modules="all-linear"))
    with torch.no_grad():  # make the adapter non-trivial (B starts at zero)
        for n, p in model.named_parameters():
            if "lora_B" in n or "score" in n:
                p.add_(torch.randn_like(p) * 0.1)
    x = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10]])
    before = model(input_ids=x).logits
    model.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(_tiny_classifier(), tmp_path / "adapter").eval()
    assert torch.allclose(reloaded(input_ids=x).logits, before, atol=1e-6)


def test_4bit_load_on_cpu_and_lora_trains(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import bitsandbytes as bnb
    tok, model = decoders.create_and_prepare_model(registry.INSTRUCT, "classifier", len(L), "4bit", lora_r=4,
                                                   lora_alpha=8)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    size = registry.count_parameters(model)
    assert 0 < size["trainable_share"] < 0.05
    batch = tok(["what a lovely day", "I am terrified"], return_tensors="pt", padding=True)
    logits = model(**batch).logits
    assert logits.shape == (2, len(L)) and torch.isfinite(logits).all()
    logits.float().sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora" in n)


def test_prefix_cached_generation_matches_full_prompts_and_training_ids():
    """Generation reuses the shared prompt prefix's cache and batches tweets by length: the answers must equal those
    of running every full prompt on its own; the training ids start with the very same prompt ids."""
    from transformers import AutoModelForCausalLM
    tok = decoders.prepare_tokenizer(registry.load_tokenizer(registry.INSTRUCT), "left")
    model = registry.load_model(registry.INSTRUCT, AutoModelForCausalLM, dtype=torch.float32)
    tweets = ["I am so happy today!", "Why does this always happen to me, I hate it", "ok",
              "Scared of the exam tomorrow #nervous", "I am so happy today?"]
    cached = decoders.generate_answers(model, tok, tweets, L, batch_size=2, max_new_tokens=6)
    full = [decoders.generate_answers(model, tok, [t], L, max_new_tokens=6, prefix_cache=False)[0] for t in tweets]
    assert cached == full and all(isinstance(a, str) for a in cached)
    parts = decoders.prompt_parts(tok, L)
    assert len(parts[0]) > 40  # the shared prefix is most of the prompt
    ex = decoders.sft_example(tok, tweets[0], [1] + [0] * (len(L) - 1), L, parts=parts)
    prompt = decoders.prompt_ids(tok, tweets[0], L, parts)
    assert ex["input_ids"][:len(prompt)] == prompt and set(ex["labels"][:len(prompt)]) == {-100}
    assert tok.decode(ex["input_ids"][len(prompt):], skip_special_tokens=True).strip() == L[0]


def test_label_probs_keep_each_labels_best_first_token_probability_until_the_answer_ends():
    """LabelProbs on hand-worked steps: label 0 starts with token 1, label 1 with token 2 or 3 (with/without a
    space); a row stops counting once it has generated a stop token (0); the logits pass through unchanged."""
    import math
    rec = decoders.LabelProbs([[1], [2, 3]], stop_ids=[0], n_rows=2, n_prompt=2)
    step1 = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.4, 0.1, 0.2, 0.3]]).log()
    assert rec(torch.tensor([[9, 9], [9, 9]]), step1) is step1
    assert torch.allclose(rec.best, torch.tensor([[0.6, 0.2], [0.1, 0.3]]))
    step2 = torch.tensor([[0.1, 0.2, 0.1, 0.6], [0.1, 0.8, 0.05, 0.05]]).log()
    rec(torch.tensor([[9, 9, 1], [9, 9, 0]]), step2)  # row 1 answered the stop token: its 0.8 must not count
    assert torch.allclose(rec.best, torch.tensor([[0.6, 0.6], [0.1, 0.3]]))
    assert math.isclose(float(rec.best.sum()), 1.6, rel_tol=1e-6)


class _LetterTok:
    """A tokenizer whose ids are the characters' codes (leading spaces dropped): 'apple' and 'avocado' share 'a'."""
    name_or_path = "letters"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text.strip()]}

    def convert_ids_to_tokens(self, i):
        return chr(i)


def test_label_first_tokens_refuses_labels_that_start_alike():
    assert decoders.label_first_tokens(_LetterTok(), ["apple", "banana"]) == [[ord("a")], [ord("b")]]
    with pytest.raises(decoders.LabError, match="'apple' and 'avocado' start with the same token 'a'"):
        decoders.label_first_tokens(_LetterTok(), ["apple", "avocado"])
    tok = registry.load_tokenizer(registry.INSTRUCT)  # the embedded instruct model: its 11 emotions start apart
    assert len({i for ids in decoders.label_first_tokens(tok, L) for i in ids}) == sum(
        len(ids) for ids in decoders.label_first_tokens(tok, L))


def test_generation_scores_leave_the_answers_unchanged_and_hold_the_first_steps_probabilities():
    """scores=True adds a logits processor: the answers must not change, and each label's score is at least the
    probability its first token gets right after the full prompt (computed here by one plain forward pass)."""
    from transformers import AutoModelForCausalLM
    tok = decoders.prepare_tokenizer(registry.load_tokenizer(registry.INSTRUCT), "left")
    model = registry.load_model(registry.INSTRUCT, AutoModelForCausalLM, dtype=torch.float32).eval()
    tweets = ["I am so happy today!", "Why does this always happen to me, I hate it", "Scared of the exam tomorrow"]
    plain = decoders.generate_answers(model, tok, tweets, L, batch_size=2, max_new_tokens=5)
    answers, scores = decoders.generate_answers(model, tok, tweets, L, batch_size=2, max_new_tokens=5, scores=True)
    assert answers == plain and scores.shape == (len(tweets), len(L))
    assert ((scores >= 0) & (scores <= 1)).all() and scores.max() > 0.01
    firsts = decoders.label_first_tokens(tok, L)
    for t, row in zip(tweets, scores):
        with torch.no_grad():
            p0 = model(input_ids=torch.tensor([decoders.prompt_ids(tok, t, L)])).logits[0, -1].softmax(-1)
        first_step = [float(p0[ids].max()) for ids in firsts]
        assert all(s >= f - 1e-4 for s, f in zip(row, first_step)), (t, row, first_step)


def test_prefix_cached_sft_loss_equals_full_forward_loss_and_gradients():
    """Training runs the shared prompt prefix once per batch (its cache repeated across the batch): the loss and the
    LoRA gradients must equal those of the full forward over every padded example (dropout off so both see the same
    network); gradient checkpointing falls back to the full forward."""
    from transformers import AutoModelForCausalLM
    tok = decoders.prepare_tokenizer(registry.load_tokenizer(registry.INSTRUCT), "left")
    base = registry.load_model(registry.INSTRUCT, AutoModelForCausalLM, dtype=torch.float32)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type=TaskType.CAUSAL_LM,
                                            target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.train()
    parts = decoders.prompt_parts(tok, L)
    rows = [[1] + [0] * 10, [0] * 11, [0, 1, 1] + [0] * 8]
    tweets = ["so happy today!", "nothing much going on here, just a long and rambling tweet about the weather", "ugh"]
    batch = decoders.pad_sft_batch(tok, [decoders.sft_example(tok, t, y, L, parts=parts) for t, y in zip(tweets, rows)])
    assert batch["input_ids"].shape[1] > len(parts[0]) + 10  # examples of different lengths: right padding present
    grads = []
    for fn in (decoders.sft_loss(0), decoders.sft_loss(len(parts[0]))):
        model.zero_grad()
        loss = fn(model, batch)
        loss.backward()
        grads.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (l_full, g_full), (l_cached, g_cached) = grads
    assert l_full > 0.1 and abs(l_full - l_cached) < 1e-4 * l_full
    assert g_full.keys() == g_cached.keys() and len(g_full) > 0
    for n in g_full:  # float32 sums in another order: equal to a relative 1e-3 of each gradient's norm
        assert (g_full[n] - g_cached[n]).norm() <= 1e-3 * g_full[n].norm() and g_full[n].norm() > 0, n
    # a batch whose rows do not share the prefix (truncated from the left) takes the full forward: same loss
    odd = {k: v.clone() for k, v in batch.items()}
    odd["input_ids"][1, 0] = tok.pad_token_id + 1 if tok.pad_token_id + 1 != odd["input_ids"][0, 0] else 0
    with torch.no_grad():
        assert abs(float(decoders.sft_loss(len(parts[0]))(model, odd)) - float(decoders.sft_loss(0)(model, odd))) < 1e-5
    model.gradient_checkpointing_enable()  # transformers turns the cache off: the full forward, same loss
    assert abs(decoders.sft_loss(len(parts[0]))(model, batch).item() - l_full) < 1e-4 * l_full


def test_sft_batches_are_right_padded_with_the_pad_id_and_masked_labels():
    """pad_sft_batch (transformers' DataCollatorForSeq2Seq) on hand-made examples: right padding even though the
    generative tokenizer pads on the left, pad id in the ids, 0 in the mask, -100 in the labels."""
    tok = decoders.prepare_tokenizer(registry.load_tokenizer(registry.INSTRUCT), "left")
    pad = tok.pad_token_id
    b = decoders.pad_sft_batch(tok, [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}])
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, pad, pad]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert tok.padding_side == "left"  # the caller's tokenizer is left as it was


def test_predict_reuses_the_restored_evaluations_logits_and_merging_keeps_them():
    """emotion_decoders.predict's two shortcuts: the validation logits of the evaluation train.fit restored (not the last
    one) are the restored model's, and merging the LoRA adapter into the weights leaves the logits unchanged."""
    import numpy as np

    from lib.training import train
    model = get_peft_model(_tiny_classifier(), LoraConfig(r=4, lora_alpha=8, task_type=TaskType.SEQ_CLS,
                                                          target_modules="all-linear"))
    x = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10]])
    setup = emotion_decoders.TrainingSetup.__new__(emotion_decoders.TrainingSetup)  # only its record of evaluations is used here
    setup.val_logits = []
    scores = iter([0.2, 0.9, 0.4])  # the second evaluation is the best: its state is restored

    def evaluate(m):
        setup.val_logits.append(m(input_ids=x).logits.detach().numpy())
        return {"loss": 0.0, "macro_f1": next(scores)}

    def loss_fn(m, b):
        return m(input_ids=b).logits.pow(2).mean() * -1  # any loss that moves the adapter and the head

    hist = train.fit(model, [x] * 2, loss_fn, evaluate, train.TrainConfig(epochs=3, lr=0.05, scheduler="none"),
                     log=lambda *_: None)
    restored = setup.restored_val_logits(hist)
    model.eval()
    now = model(input_ids=x).logits.detach().numpy()
    assert np.allclose(restored, now, atol=1e-6) and not np.allclose(setup.val_logits[-1], now, atol=1e-3)
    merged = model.merge_and_unload().eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert np.allclose(merged(input_ids=x).logits.detach().numpy(), now, atol=1e-5)
    setup.val_logits.pop()  # an evaluation this process did not see (another rank's, a resumed run's): no reuse
    assert setup.restored_val_logits(hist) is None
