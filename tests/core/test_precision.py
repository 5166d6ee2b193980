"""The prediction-precision policy (lib.core.precision): what each mode resolves to, what a prediction pass then
computes in, and that a run's cache key and record carry it."""
import pytest
import torch

from lib.core import precision
from lib.core.errors import LabError
from lib.running import profiles, runkey


@pytest.fixture(autouse=True)
def _restore():
    yield
    precision.configure("fp32")


def _linear_dtype(device="cpu"):
    layer = torch.nn.Linear(4, 3)
    with precision.inference(device):
        return layer(torch.ones(2, 4)).dtype


def test_fp32_is_the_default_and_predicts_in_float32():
    assert precision.resolved("cpu") == "fp32"
    assert _linear_dtype() == torch.float32


def test_bf16_predicts_in_bfloat16_and_close_to_float32():
    layer = torch.nn.Linear(64, 8)
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    exact = layer(x)
    assert precision.configure("bf16") == "bf16"
    with precision.inference(torch.device("cpu")):
        got = layer(x)
    assert got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), exact, atol=0.05, rtol=0.02)  # bf16 keeps ~3 significant digits


def test_auto_follows_the_cpu_features(monkeypatch):
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: True)
    assert precision.configure("auto") == "bf16"
    assert "natively" in precision.describe()
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: False)
    assert precision.resolved("cpu") == "fp32"
    assert _linear_dtype() == torch.float32
    assert precision.describe() == "fp32 (auto: no native bf16 here)"


def test_an_unknown_mode_is_refused_naming_the_choices():
    with pytest.raises(LabError, match="'fp16'.*auto, bf16, fp32"):
        precision.configure("fp16")


def test_smoke_stays_fp32_and_the_environment_overrides_every_profile(monkeypatch):
    monkeypatch.delenv("LAB_PRECISION", raising=False)
    assert profiles.compute_precision("smoke") == "fp32"
    assert profiles.compute_precision("cpu") == "auto"
    monkeypatch.setenv("LAB_PRECISION", "bf16")
    assert profiles.compute_precision("smoke") == "bf16"


def test_the_cache_key_names_a_bf16_prediction_and_leaves_fp32_keys_as_they_were(monkeypatch):
    monkeypatch.delenv("LAB_PRECISION", raising=False)
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runkey.compute({"PROFILE": "cpu"}) == {"precision": "bf16"}
    assert runkey.compute({"PROFILE": "smoke"}) == {}
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: False)
    assert runkey.compute({"PROFILE": "cpu"}) == {}  # the same run on a machine without bf16: the fp32 key


def test_every_prediction_function_predicts_in_bf16_when_asked_close_to_fp32(tmp_path):
    """tests/predict_job.py (encoder logits, multitask embeddings and pair probabilities, QA logits, generation with
    label scores) in fp32 and in bf16: every number moves (so each function runs under the policy), none by more than
    bf16's rounding carries through a small model, and the greedy answers of 3 tokens stay the same."""
    import os
    import pickle
    import subprocess
    import sys

    import numpy as np

    from lib.core import paths
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT), "HF_HUB_OFFLINE": "1"}
    runs = {}
    for mode in ("fp32", "bf16"):
        proc = subprocess.run([sys.executable, str(paths.ROOT / "tests" / "predict_job.py"), str(tmp_path / mode)],
                              cwd=paths.ROOT, env={**env, "LAB_PRECISION": mode}, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[mode] = pickle.loads((tmp_path / mode).read_bytes())
    full, half = runs["fp32"], runs["bf16"]
    pairs = {"encoder logits": (full["encoder_logits"], half["encoder_logits"]),
             "multitask embeddings": (full["multitask_embed"], half["multitask_embed"]),
             "multitask pair probabilities": (full["multitask_para"][0], half["multitask_para"][0]),
             "QA start logits": (np.concatenate(full["qa"][0]), np.concatenate(half["qa"][0])),
             "generation label scores": (full["generated"][1], half["generated"][1])}
    for name, (a, b) in pairs.items():
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        assert a.shape == b.shape, name
        assert not np.array_equal(a, b), f"{name}: bf16 changed nothing, so it did not run under the policy"
        assert np.allclose(a, b, atol=0.1, rtol=0.1), f"{name}: bf16 moved it by {np.abs(a - b).max():.3f}"
    assert full["generated"][0] == half["generated"][0]


def test_training_on_cpu_follows_the_policy():
    """train.fit under bf16: accelerate's bf16 autocast (the step's matmuls in bf16, the weights fp32); fp32: none."""
    from lib.training import train

    def run():
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 1)
        x, y = torch.randn(32, 8), torch.randn(32, 1)
        loader = torch.utils.data.DataLoader([{"x": a, "y": b} for a, b in zip(x, y)], batch_size=8)
        seen = []

        def loss_fn(m, b):
            out = m(b["x"])
            seen.append(out.dtype)
            return torch.nn.functional.mse_loss(out.float(), b["y"])
        cfg = train.TrainConfig(epochs=1, lr=1e-2, progress=False, patience=0)
        hist = train.fit(model, loader, loss_fn, lambda m: {"macro_f1": 0.0}, cfg, log=lambda *a: None)
        return hist.precision, set(seen), next(model.parameters()).dtype
    assert run() == ("no", {torch.float32}, torch.float32)
    precision.configure("bf16")
    assert run() == ("bf16", {torch.bfloat16}, torch.float32)


def test_a_mistyped_environment_value_stops_the_cache_key_too(monkeypatch):
    monkeypatch.setenv("LAB_PRECISION", "bfloat16")
    with pytest.raises(LabError, match="'bfloat16' \\(LAB_PRECISION"):
        runkey.compute({"PROFILE": "cpu"})
