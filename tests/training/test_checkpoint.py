"""Checkpoints of the training engine (lib.training.checkpoint through lib.training.train.fit): a resume ends as an uninterrupted run
would, even mid-epoch of a shuffled loader with dropout; a checkpoint of another training (configuration, model,
data) is not resumed and the log says why; a save killed at any point leaves the previous good checkpoint marked."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lib.core import paths
from lib.training import checkpoint, train

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: the shared job scripts
import checkpoint_job  # noqa: E402  (tests/ is not a package)


def _fit(folder, lines=None, **kw):
    """checkpoint_job's training in this process; its result (checkpoint_job.result)."""
    model, loader, loss_fn, evaluate, cfg = checkpoint_job.build(folder, **kw)
    log = lines.append if lines is not None else (lambda *_: None)
    hist = train.fit(model, loader, loss_fn, evaluate, cfg, log=log)
    return checkpoint_job.result(hist, model)


def _crash(folder, **kw):
    with pytest.raises(KeyboardInterrupt):
        _fit(folder, **kw)


def _marked_step(folder) -> int:
    return json.loads((Path(folder) / checkpoint.MARKER).read_text())["step"]


def _same_run(a: dict, b: dict) -> bool:
    return a["steps"] == b["steps"] and a["evals"] == b["evals"] and a["weights"] == b["weights"]


def test_resume_mid_epoch_of_a_shuffled_loader_ends_exactly_like_an_uninterrupted_run(tmp_path):
    ref = _fit(tmp_path / "ref")
    _crash(tmp_path / "b", crash_at=8)            # in step 8 of 12: the second epoch, its 4th batch
    assert _marked_step(tmp_path / "b") == 6
    lines = []
    out = _fit(tmp_path / "b", lines)
    assert out["resumed_from_step"] == 6 and any(l.startswith("resumed from") for l in lines)
    assert len(out["steps"]) == 12 and _same_run(out, ref)   # same batches, same dropout masks, bit for bit


def test_a_checkpoint_of_another_configuration_is_not_resumed_and_the_log_says_why(tmp_path):
    _crash(tmp_path / "b", crash_at=8)
    lines = []
    out = _fit(tmp_path / "b", lines, lr=0.1)
    assert out["resumed_from_step"] == 0
    assert any("not resuming" in l and "config.lr 0.05 -> 0.1" in l and "starting fresh" in l for l in lines)
    assert _same_run(out, _fit(tmp_path / "fresh", lr=0.1))
    assert _marked_step(tmp_path / "b") == 12     # the new training's own checkpoints replaced the old one


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path):
    _crash(tmp_path / "b", crash_at=8)
    lines = []
    out = _fit(tmp_path / "b", lines, n=40)
    assert out["resumed_from_step"] == 0 and any("not resuming" in l and "data " in l for l in lines)


def _dies_in_second_call(monkeypatch, module, name: str, when=lambda *a, **kw: True):
    """Replace module.name by a version that raises KeyboardInterrupt at its second call for which `when` holds
    (a process killed there); the original is restored by `restore()`, returned."""
    original, calls = getattr(module, name), []

    def dying(*a, **kw):
        if when(*a, **kw):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt(f"killed in {name}")
        return original(*a, **kw)
    monkeypatch.setattr(module, name, dying)
    return lambda: monkeypatch.setattr(module, name, original)


def _resumes_from_step_3_and_ends_like_an_uninterrupted_run(tmp_path):
    out = _fit(tmp_path / "b")
    assert out["resumed_from_step"] == 3 and _same_run(out, _fit(tmp_path / "ref"))


def test_a_save_killed_midway_resumes_from_the_previous_good_checkpoint(tmp_path, monkeypatch):
    """The second save (step 6) dies after writing the model's state and before the rest: the marker still names
    step 3's save, whose files are whole; the re-run resumes there, ends as an uninterrupted run, and cleans up."""
    import accelerate.accelerator as acc_module
    restore = _dies_in_second_call(monkeypatch, acc_module, "save_custom_state",
                                   when=lambda obj, path, index=0, **kw: index == 1)
    _crash(tmp_path / "b")
    restore()
    assert _marked_step(tmp_path / "b") == 3 and (tmp_path / "b" / "step-000006.tmp").is_dir()
    _resumes_from_step_3_and_ends_like_an_uninterrupted_run(tmp_path)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["latest.json", "step-000012"]


def test_a_kill_after_the_rename_and_before_the_marker_resumes_from_the_marked_save(tmp_path, monkeypatch):
    restore = _dies_in_second_call(monkeypatch, checkpoint, "_write_marker")
    _crash(tmp_path / "b")
    restore()
    assert _marked_step(tmp_path / "b") == 3 and (tmp_path / "b" / "step-000006").is_dir()
    _resumes_from_step_3_and_ends_like_an_uninterrupted_run(tmp_path)


def test_an_unreadable_marker_starts_fresh_and_says_so(tmp_path):
    _crash(tmp_path / "b", crash_at=8)
    (tmp_path / "b" / checkpoint.MARKER).write_text('{"folder": "step-0000')
    lines = []
    out = _fit(tmp_path / "b", lines)
    assert out["resumed_from_step"] == 0 and any("unreadable" in l for l in lines)


@pytest.mark.faults
def test_sigkill_in_the_middle_of_a_save_then_a_rerun_ends_like_an_uninterrupted_run(tmp_path):
    """A real kill -9 inside accelerate's save (model written, the rest not), in a process of its own."""
    job, env = str(paths.ROOT / "tests" / "checkpoint_job.py"), {**os.environ, "PYTHONPATH": str(paths.ROOT)}

    def run(folder, out, *extra):
        return subprocess.run([sys.executable, job, str(folder), str(out), *extra], env=env, cwd=paths.ROOT,
                              capture_output=True, text=True, timeout=300)
    killed = run(tmp_path / "b", tmp_path / "killed.json", "3")      # dies in the save at step 9
    assert killed.returncode == -9 and not (tmp_path / "killed.json").exists()
    assert _marked_step(tmp_path / "b") == 6
    rerun = run(tmp_path / "b", tmp_path / "rerun.json")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert run(tmp_path / "ref", tmp_path / "ref.json").returncode == 0
    out, ref = (json.loads((tmp_path / f).read_text()) for f in ("rerun.json", "ref.json"))
    assert out["resumed_from_step"] == 6 and _same_run(out, ref)


def test_the_fingerprint_changes_with_what_training_depends_on_and_not_with_where_it_saves(tmp_path):
    model, loader, _, _, cfg = checkpoint_job.build(tmp_path)
    base = checkpoint.fingerprint(cfg, model, loader, 1, "no")
    moved = train.TrainConfig(**{**vars(cfg), "checkpoint_dir": "elsewhere", "save_every": 5, "progress": True})
    assert checkpoint.fingerprint(moved, model, loader, 1, "no") == base
    assert checkpoint.differences(base, checkpoint.fingerprint(train.TrainConfig(**{**vars(cfg), "epochs": 4}),
                                                               model, loader, 1, "no")) == ["config.epochs 3 -> 4"]
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-3               # another starting point (seed, pretrained weights)
    assert [d.split()[0] for d in checkpoint.differences(base, checkpoint.fingerprint(cfg, model, loader, 1, "no"))] \
        == ["model"]
    _, other, _, _, _ = checkpoint_job.build(tmp_path, n=32)
    other.generator.manual_seed(7)                  # the same examples in another order
    assert checkpoint.fingerprint(cfg, checkpoint_job.build(tmp_path)[0], other, 1, "no")["data"] != base["data"]
    assert checkpoint.fingerprint(cfg, checkpoint_job.build(tmp_path)[0], loader, 2, "no")["processes"] == 2


def test_a_list_of_batches_is_fingerprinted_by_its_contents():
    a = [(torch.ones(2, 2), torch.zeros(2))] * 3
    b = [(torch.ones(2, 2), torch.zeros(2))] * 2 + [(torch.ones(2, 2), torch.tensor([0.0, 1e-6]))]
    assert checkpoint.data_digest(a) == checkpoint.data_digest(list(a)) != checkpoint.data_digest(b)


def test_rng_state_replays_an_epoch_order_of_torch_and_numpy_driven_loaders():
    import numpy as np

    class NumpyBatches:                             # a batch sampler with its own numpy generator, as the lab's
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def __iter__(self):
            yield from np.array_split(self.rng.permutation(10), 3)

        def __len__(self):
            return 3
    torch_loader = torch.utils.data.DataLoader(list(range(10)), batch_size=3, shuffle=True,
                                               generator=torch.Generator().manual_seed(0))
    for loader in (torch_loader, NumpyBatches()):
        state = checkpoint.rng_state(loader)
        first = [list(map(int, b)) for b in loader]
        assert [list(map(int, b)) for b in loader] != first      # each pass draws a new order
        checkpoint.set_rng_state(loader, state)
        assert [list(map(int, b)) for b in loader] == first


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
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, data, loss_fn, evaluate, cfg, log=lambda *_: None)
    model, data, loss_fn, evaluate, cfg = _resumable(tmp_path / "b")               # a fresh process would do this
    out = train.fit(model, data, loss_fn, evaluate, cfg, log=lambda *_: None)
    assert out.resumed_from_step == 6                                              # the last checkpoint (every 2)
    assert out.optimizer_steps == ref.optimizer_steps == 12
    assert torch.allclose(model.weight, ref_w, atol=1e-7)
    assert [e["neg"] for e in out.evals] == [e["neg"] for e in ref.evals]
    assert out.steps == ref.steps
