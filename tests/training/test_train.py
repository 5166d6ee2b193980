"""The shared training loop (lib.training.train.fit): best checkpoint restored, early stopping, frozen weights untouched,
learning-rate groups and schedules."""
import json
import sys
from pathlib import Path

import pytest
import torch

from lib.training import optimization, train

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: the shared job scripts
import engine_scenarios  # noqa: E402  (tests/ is not a package)


def _setup(scores):
    """A linear model, a fixed batch, and an evaluate() that returns the scripted scores one call at a time
    while recording the weight at each evaluation."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    model[0].weight.requires_grad_(False)  # a frozen layer, as under LoRA
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    batches = [(x, y)] * 2                      # two micro-batches per epoch
    seen = []

    def loss_fn(m, b):
        return torch.nn.functional.mse_loss(m(b[0]), b[1])

    def evaluate(m):
        seen.append(m[1].weight.detach().clone())
        return {"loss": 0.0, "macro_f1": scores[len(seen) - 1]}

    return model, batches, loss_fn, evaluate, seen


def test_best_state_is_restored_and_early_stopping_counts_patience():
    scores = [0.1, 0.5, 0.3, 0.2, 0.9]            # best after epoch 2, then two worse: stop before the 0.9
    model, batches, loss_fn, evaluate, seen = _setup(scores)
    frozen = model[0].weight.detach().clone()
    hist = train.fit(model, batches, loss_fn, evaluate,
                     train.TrainConfig(epochs=5, lr=0.1, patience=2, scheduler="none"), log=lambda *_: None)
    assert len(hist.evals) == 4 and hist.stopped_early
    assert hist.best["macro_f1"] == 0.5 and hist.best["epoch"] == 2
    assert torch.equal(model[1].weight, seen[1])          # weights of the best evaluation, not the last
    assert not torch.equal(model[1].weight, seen[3])
    assert torch.equal(model[0].weight, frozen)           # frozen layer never moved
    assert hist.optimizer_steps == 8                      # 4 epochs x 2 batches


def test_max_steps_and_eval_every():
    model, batches, loss_fn, evaluate, seen = _setup([0.1, 0.2, 0.3, 0.4])
    hist = train.fit(model, batches, loss_fn, evaluate,
                     train.TrainConfig(epochs=10, lr=0.01, max_steps=3, eval_every=2, patience=0),
                     log=lambda *_: None)
    assert hist.optimizer_steps == 3
    assert [e["step"] for e in hist.evals] == [2, 3]      # every 2 steps, plus once at the cap
    assert not hist.stopped_early


def test_grad_accum_counts_optimizer_steps():
    model, batches, loss_fn, evaluate, _ = _setup([0.1, 0.2])
    hist = train.fit(model, batches, loss_fn, evaluate,
                     train.TrainConfig(epochs=2, lr=0.01, grad_accum=2), log=lambda *_: None)
    assert hist.optimizer_steps == 2                      # one step per epoch of 2 micro-batches


def test_linear_warmup_schedule_shape():
    p = torch.nn.Parameter(torch.zeros(2, 2))
    opt = optimization.make_optimizer(torch.nn.ParameterList([p]), train.TrainConfig(lr=1.0))
    sched = optimization.make_scheduler(opt, train.TrainConfig(lr=1.0, warmup_ratio=0.2, scheduler="linear"), 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(); sched.step()
    # 2 warmup steps: 0, 0.5; then linear decay from 1 over 8 steps: 1, 7/8, ..., 1/8
    assert lrs[:3] == [0.0, 0.5, 1.0] and abs(lrs[-1] - 0.125) < 1e-9


def test_weight_decay_skips_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    opt = optimization.make_optimizer(model, train.TrainConfig(weight_decay=0.01))
    wd = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert wd[id(model[0].weight)] == 0.01
    assert wd[id(model[0].bias)] == 0.0 and wd[id(model[1].weight)] == 0.0


def test_grad_accum_logs_the_mean_of_the_accumulated_micro_batches():
    """With lr 0 nothing moves, so the micro-batch losses are known in advance: (1-0)^2 = 1 and (3-0)^2 = 9 for a
    zero model; a step of two micro-batches must log (1 + 9) / 2 = 5, not the last micro-batch's 9."""
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    batches = [(torch.ones(1, 1), torch.ones(1, 1)), (torch.ones(1, 1), torch.full((1, 1), 3.0))] * 2

    def loss_fn(m, b):
        return torch.nn.functional.mse_loss(m(b[0]), b[1])

    hist = train.fit(model, batches, loss_fn, lambda m: {"loss": 0.0, "macro_f1": 0.0},
                     train.TrainConfig(epochs=1, lr=0.0, grad_accum=2, scheduler="none", clip_norm=0),
                     log=lambda *_: None)
    assert hist.steps == [(1, 5.0), (2, 5.0)]
    assert hist.evals[-1]["train_loss"] == 5.0


def test_precision_follows_the_device(monkeypatch):
    """bf16 where the GPU has it, fp16 (GradScaler) where it does not, fp32 on CPU or when reduced precision is off."""
    cfg = train.TrainConfig()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train.choose_precision(cfg) == "no"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)    # A100, H100, L4
    assert train.choose_precision(cfg) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)   # T4, V100
    assert train.choose_precision(cfg) == "fp16"
    assert train.choose_precision(train.TrainConfig(bf16=False)) == "no"


def test_history_records_the_precision_used():
    model, batches, loss_fn, evaluate, _ = _setup([0.1])
    hist = train.fit(model, batches, loss_fn, evaluate, train.TrainConfig(epochs=1), log=lambda *_: None)
    assert hist.precision == train.choose_precision(train.TrainConfig())
    assert hist.to_dict()["precision"] == hist.precision


def test_partial_accumulation_group_still_steps():
    """3 micro-batches with grad_accum 2: steps after micro-batches 2 and 3 (the partial group), per epoch."""
    model, batches, loss_fn, evaluate, _ = _setup([0.1, 0.2])
    hist = train.fit(model, batches + batches[:1], loss_fn, evaluate,
                     train.TrainConfig(epochs=2, lr=0.01, grad_accum=2, patience=0), log=lambda *_: None)
    assert hist.optimizer_steps == 4 and [e["step"] for e in hist.evals] == [2, 4]


def test_reduced_precision_applies_to_the_loss_only_and_the_model_comes_back_unwrapped(monkeypatch):
    """bf16 through accelerate (CPU autocast stands in for the GPU): training runs, the history says bf16, and the
    caller's model is handed back with its own forward (evaluate() and later use run in the model's precision)."""
    monkeypatch.setattr(train, "choose_precision", lambda cfg: "bf16")
    model, batches, loss_fn, evaluate, _ = _setup([0.1])
    forward = model.forward
    dtypes = []

    def loss_bf16(m, b):
        out = m(b[0])
        dtypes.append(out.dtype)
        return torch.nn.functional.mse_loss(out.float(), b[1])

    def evaluate_dtype(m):
        dtypes.append(m(batches[0][0]).dtype)
        return evaluate(m)

    hist = train.fit(model, batches, loss_bf16, evaluate_dtype, train.TrainConfig(epochs=1), log=lambda *_: None)
    assert hist.precision == "bf16"
    assert dtypes == [torch.bfloat16, torch.bfloat16, torch.float32]   # autocast in the loss, not in evaluate()
    assert model.forward == forward and model(batches[0][0]).dtype == torch.float32


def test_the_fused_optimiser_makes_the_same_update_as_the_per_tensor_one():
    """make_optimizer uses torch's fused AdamW on CPU (optimization.fused_supported); over a few steps with weight decay
    groups it must move the weights as the default (foreach) AdamW does, up to float rounding."""
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    b = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    b.load_state_dict(a.state_dict())
    start = a[0].weight.detach().clone()
    fused = optimization.make_optimizer(a, train.TrainConfig(lr=0.01, weight_decay=0.1))
    assert fused.defaults["fused"] is True
    index, twins = {id(p): i for i, p in enumerate(a.parameters())}, list(b.parameters())
    plain = torch.optim.AdamW([{"params": [twins[index[id(p)]] for p in g["params"]], "lr": g["lr"],
                                "weight_decay": g["weight_decay"]} for g in fused.param_groups])
    assert plain.defaults["fused"] is None
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    for _ in range(5):
        for m, opt in ((a, fused), (b, plain)):
            torch.nn.functional.mse_loss(m(x), y).backward()
            opt.step(); opt.zero_grad()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    assert (a[0].weight - start).abs().max() > 1e-3  # the steps did move the weights


def test_fused_optimiser_only_for_float_parameters():
    assert optimization.fused_supported([torch.nn.Parameter(torch.zeros(2))])
    assert not optimization.fused_supported([torch.zeros(2, dtype=torch.int8)])
    assert not optimization.fused_supported([])


@pytest.mark.parametrize("shape", ["linear", "cosine"])
@pytest.mark.parametrize("warm,total", [(0, 7), (3, 10), (174, 579), (5, 5)])
def test_warmup_schedules_equal_transformers_own(shape, warm, total):
    """lib.training.train writes transformers' two warmup schedules out on LambdaLR (importing them costs ~4 s): every step's
    learning rate must be the very float transformers gives."""
    from transformers import (
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )
    theirs_fn = get_linear_schedule_with_warmup if shape == "linear" else get_cosine_schedule_with_warmup
    rates = []
    for make in (lambda o: optimization.make_scheduler(o, train.TrainConfig(lr=3e-4, scheduler=shape,
                                                                     warmup_ratio=warm / total), total),
                 lambda o: theirs_fn(o, int(warm / total * total), total)):  # make_scheduler's rounding
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
        sched, seen = make(opt), []
        for _ in range(total + 2):
            seen.append(opt.param_groups[0]["lr"])
            opt.step(); sched.step()
        rates.append(seen)
    assert rates[0] == rates[1] and max(rates[0]) > 0


@pytest.mark.parametrize("name", sorted(engine_scenarios.SCENARIOS))
def test_the_engine_reproduces_its_pinned_histories(name):
    """Every branch of the loop on a tiny model gives the numbers pinned in tests/expected_engine_histories.json
    (made by `python tests/engine_scenarios.py`; the refactored engine matched them bit for bit on the machine that
    made them): a change that moves a step, an evaluation or a loss fails here. Counts exactly, floats to float32
    rounding, which a CPU with other vector kernels may reorder."""
    pinned = json.loads((Path(__file__).parents[1] / "expected_engine_histories.json").read_text())[name]
    got = json.loads(json.dumps(engine_scenarios.run(name)))  # tuples as lists, as in the file
    assert [s[0] for s in got["steps"]] == [s[0] for s in pinned["steps"]]
    assert [(e["step"], e["epoch"]) for e in got["evals"]] == [(e["step"], e["epoch"]) for e in pinned["evals"]]
    assert (got["stopped_early"], got["optimizer_steps"], got["best"]["step"]) == \
        (pinned["stopped_early"], pinned["optimizer_steps"], pinned["best"]["step"])
    assert [s[1] for s in got["steps"]] == pytest.approx([s[1] for s in pinned["steps"]], rel=1e-5, abs=1e-7)
    assert [e["loss"] for e in got["evals"]] == pytest.approx([e["loss"] for e in pinned["evals"]], rel=1e-5)
    for mine, theirs in zip(got["weights"], pinned["weights"], strict=True):
        assert mine == pytest.approx(theirs, rel=1e-5, abs=1e-6)
