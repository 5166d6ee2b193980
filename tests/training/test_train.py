"""The shared training loop (lib.training.train.fit): best checkpoint restored, early stopping, frozen weights untouched,
learning-rate groups and schedules."""
import pytest
import torch

from lib.training import train


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
    opt = train.make_optimizer(torch.nn.ParameterList([p]), train.TrainConfig(lr=1.0))
    sched = train.make_scheduler(opt, train.TrainConfig(lr=1.0, warmup_ratio=0.2, scheduler="linear"), 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(); sched.step()
    # 2 warmup steps: 0, 0.5; then linear decay from 1 over 8 steps: 1, 7/8, ..., 1/8
    assert lrs[:3] == [0.0, 0.5, 1.0] and abs(lrs[-1] - 0.125) < 1e-9


def test_weight_decay_skips_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    opt = train.make_optimizer(model, train.TrainConfig(weight_decay=0.01))
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


def _resumable(tmp_path, crash_at=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    gen = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 4, generator=gen), torch.randn(8, 1, generator=gen)) for _ in range(4)]
    calls = {"n": 0}

    def loss_fn(m, b):
        calls["n"] += 1
        if crash_at is not None and calls["n"] == crash_at:
            raise KeyboardInterrupt("interrupted")
        return torch.nn.functional.mse_loss(m(b[0]), b[1]) + 0.0 * torch.rand(())  # consumes the torch RNG

    def evaluate(m):
        with torch.no_grad():
            return {"loss": 0.0, "neg": -float(sum(torch.nn.functional.mse_loss(m(x), y) for x, y in data))}

    cfg = train.TrainConfig(epochs=3, lr=0.05, monitor="neg", patience=0, checkpoint_dir=str(tmp_path / "ckpt"),
                            save_every=2, resume=True, progress=False, scheduler="linear")
    return model, data, loss_fn, evaluate, cfg


def test_resume_continues_from_the_last_checkpoint_and_ends_like_an_uninterrupted_run(tmp_path):
    model, data, loss_fn, evaluate, cfg = _resumable(tmp_path / "a")
    ref = train.fit(model, data, loss_fn, evaluate, cfg, log=lambda *_: None)
    ref_w = model.weight.detach().clone()
    model, data, loss_fn, evaluate, cfg = _resumable(tmp_path / "b", crash_at=7)  # dies in step 7 of 12
    import pytest
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, data, loss_fn, evaluate, cfg, log=lambda *_: None)
    model, data, loss_fn, evaluate, cfg = _resumable(tmp_path / "b")               # a fresh process would do this
    out = train.fit(model, data, loss_fn, evaluate, cfg, log=lambda *_: None)
    assert out.resumed_from_step == 6                                              # the last checkpoint (every 2)
    assert out.optimizer_steps == ref.optimizer_steps == 12
    assert torch.allclose(model.weight, ref_w, atol=1e-7)
    assert [e["neg"] for e in out.evals] == [e["neg"] for e in ref.evals]
    assert out.steps == ref.steps


def test_tracking_writes_tensorboard_events(tmp_path):
    model, batches, loss_fn, evaluate, _ = _setup([0.1, 0.2])
    train.fit(model, batches, loss_fn, evaluate,
              train.TrainConfig(epochs=2, lr=0.01, track="tensorboard", track_dir=str(tmp_path), progress=False),
              log=lambda *_: None)
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(events[0].parent))
    ea.Reload()
    assert {"train_loss", "macro_f1"} <= set(ea.Tags()["scalars"])
    assert [s.step for s in ea.Scalars("macro_f1")] == [2, 4]


def test_history_records_the_precision_used():
    model, batches, loss_fn, evaluate, _ = _setup([0.1])
    hist = train.fit(model, batches, loss_fn, evaluate, train.TrainConfig(epochs=1), log=lambda *_: None)
    assert hist.precision == train.choose_precision(train.TrainConfig())
    assert hist.to_dict()["precision"] == hist.precision


def test_progress_bar_shows_steps_unless_tqdm_disable(monkeypatch, capsys):
    """Interactive runs get a bar counting optimiser steps; run_all's kernels set TQDM_DISABLE=1 and get none."""
    model, batches, loss_fn, evaluate, _ = _setup([0.1, 0.2])
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    train.fit(model, batches, loss_fn, evaluate, train.TrainConfig(epochs=1), log=lambda *_: None)
    assert "2/2" in capsys.readouterr().err                # 2 micro-batches, no accumulation: 2 steps
    monkeypatch.setenv("TQDM_DISABLE", "1")
    model, batches, loss_fn, evaluate, _ = _setup([0.1, 0.2])
    train.fit(model, batches, loss_fn, evaluate, train.TrainConfig(epochs=1), log=lambda *_: None)
    assert capsys.readouterr().err == ""


def test_log_lines_say_steps_and_time_left_in_words():
    model, batches, loss_fn, evaluate, _ = _setup([0.1, 0.2])
    lines = []
    train.fit(model, batches, loss_fn, evaluate, train.TrainConfig(epochs=2), log=lines.append)
    assert [l.split(":")[0] for l in lines] == ["epoch 1.00 step 2/4", "epoch 2.00 step 4/4"]
    assert lines[-1].endswith("~0s left)")


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
    """make_optimizer uses torch's fused AdamW on CPU (train.fused_supported); over a few steps with weight decay
    groups it must move the weights as the default (foreach) AdamW does, up to float rounding."""
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    b = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    b.load_state_dict(a.state_dict())
    start = a[0].weight.detach().clone()
    fused = train.make_optimizer(a, train.TrainConfig(lr=0.01, weight_decay=0.1))
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
    assert train.fused_supported([torch.nn.Parameter(torch.zeros(2))])
    assert not train.fused_supported([torch.zeros(2, dtype=torch.int8)])
    assert not train.fused_supported([])


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
    for make in (lambda o: train.make_scheduler(o, train.TrainConfig(lr=3e-4, scheduler=shape,
                                                                     warmup_ratio=warm / total), total),
                 lambda o: theirs_fn(o, int(warm / total * total), total)):  # make_scheduler's rounding
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
        sched, seen = make(opt), []
        for _ in range(total + 2):
            seen.append(opt.param_groups[0]["lr"])
            opt.step(); sched.step()
        rates.append(seen)
    assert rates[0] == rates[1] and max(rates[0]) > 0
