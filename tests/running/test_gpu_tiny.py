"""The gpu_tiny tier: every run of the gpu profile, executed with papermill on CPU at tiny size (LAB_TINY=1: samples
and steps capped, lib/running/tiny.py) against a fake Hugging Face cache of tiny random-weight checkpoints under the
profile's exact hub ids (tests/make_fake_hub.py), with HF_HUB_OFFLINE=1. SQuAD (05_qa's DATA_SOURCE="hub") loads
through datasets.load_dataset("squad") from a fake datasets cache built from the local dev file; SemEval, ECB+,
minBERT and SICK come from DATA_DIR as in every profile.

A fake HF token is planted in the environment of the runs; no output (metrics.json, executed notebook, HTML
report, run.json, logs) may contain it.

    ./tests/run.sh -m gpu_tiny
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: make_fake_hub
import make_fake_hub  # noqa: E402

from lib.running import profiles  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FAKE_TOKEN = "hf_FakeTokenPlantedByTestGpuTiny0123456789"
GPU_RUNS = [(nb, run) for nb, run, _ in profiles.RUNS["gpu"]]
pytestmark = pytest.mark.gpu_tiny


@pytest.fixture(scope="session")
def fake_hub(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("fake_hub")
    hub, ds_cache = root / "hub", root / "datasets"
    make_fake_hub.build(hub)
    make_fake_hub.build_squad(hub, ds_cache, data_dir / "squad_v1.1" / "dev-v1.1.json")
    return hub, ds_cache


@pytest.fixture(scope="session")
def gpu_tiny_run(fake_hub, data_dir, tmp_path_factory):
    """./run_all.sh --profile gpu under LAB_TINY=1, offline, against the fake caches: once per session."""
    hub, ds_cache = fake_hub
    out = tmp_path_factory.mktemp("gpu_tiny_outputs")
    env = {**os.environ, "LAB_TINY": "1", "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(ds_cache), "LAB_OUTPUTS": str(out),
           "DATA_DIR": str(data_dir), "HF_TOKEN": FAKE_TOKEN, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "lib.running.runner", "--profile", "gpu"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    (out / "runner.log").write_text(proc.stdout + proc.stderr)
    return out, proc


@pytest.mark.parametrize("notebook,run", GPU_RUNS, ids=[f"{nb}/{r}" for nb, r in GPU_RUNS])
def test_gpu_run_executes_at_tiny_size(gpu_tiny_run, notebook, run):
    out, _ = gpu_tiny_run
    d = out / notebook / run
    rec = json.loads((d / "run.json").read_text())
    assert rec["status"] == "ok", f"{notebook}/{run}: {rec['error']}"
    m = json.loads((d / "metrics.json").read_text())
    params = dict(next(p for nb, r, p in profiles.RUNS["gpu"] if (nb, r) == (notebook, run)))
    expected = {**profiles.presets(notebook, "gpu"), **params}
    assert m["params"]["PROFILE"] == "gpu"
    for k in ("MODEL", "DECODER", "DATA_SOURCE"):  # the profile's own models and data source, not stand-ins
        if isinstance(expected.get(k), dict):  # a dict parameter: the keys the profile sets
            assert {key: m["params"][k][key] for key in expected[k]} == expected[k]
        elif k in expected:
            assert m["params"][k] == expected[k]
    assert m["headline"], "no headline metrics"
    assert (d / "report.html").stat().st_size > 10_000


def test_gpu_profile_covers_every_hub_id():
    """Every hub id the gpu profile loads has a tiny checkpoint in the fake hub (else a run would fail offline)."""
    used = set()
    for nb, _, params in profiles.RUNS["gpu"]:
        p = {**profiles.presets(nb, "gpu"), **params}
        used |= {p["MODEL"]} if "MODEL" in p else set()
        used |= {p["DECODER"]["model"]} if "model" in p.get("DECODER", {}) else set()
    defaults = {"06_multitask": "bert-base-uncased"}  # the notebook's own default, which the gpu profile keeps
    used |= set(defaults.values())
    assert used - {"all-MiniLM-L6-v2"} <= set(make_fake_hub.MODELS)
    assert "dunzhang/stella_en_1.5B_v5" in used


def test_planted_token_never_lands_in_outputs(gpu_tiny_run):
    out, proc = gpu_tiny_run
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "notebook.ipynb" for p in files) and any(p.name == "metrics.json" for p in files)
    leaks = [str(p) for p in files if FAKE_TOKEN.encode() in p.read_bytes()]
    assert not leaks, f"HF token found in {leaks}"
    assert FAKE_TOKEN not in proc.stdout + proc.stderr


def test_tiny_caps_only_lower_samples_and_steps(monkeypatch):
    from lib.running import params, tiny
    monkeypatch.setenv("LAB_TINY", "1")
    P = params.resolve({"PROFILE": "gpu"}, "03_qlora_decoders")
    assert (P.TRAINING["max_steps"], P.MAX_TRAIN_SAMPLES, P.TRAINING["epochs"]) == (2, 16, 1)
    assert P.TRAINING["patience"] == 2  # a dict parameter: only the capped key changes
    assert (P.MODEL, P.BATCH_SIZE, P.QUANTIZATION) == ("google/gemma-2b", 16, "4bit")  # untouched
    P = params.resolve({"PROFILE": "gpu", "MAX_TRAIN_SAMPLES": 8}, "03_qlora_decoders")
    assert P.MAX_TRAIN_SAMPLES == 8  # a smaller value stays
    assert tiny._cap([0, 500, 10], [48, 96, 48]) == [48, 96, 10]
    monkeypatch.delenv("LAB_TINY")
    assert params.resolve({"PROFILE": "gpu"}, "03_qlora_decoders").TRAINING["max_steps"] == 0
