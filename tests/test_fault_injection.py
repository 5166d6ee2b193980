"""The fault-injection tier (`./tests/run.sh -m faults`): a process is killed with SIGKILL at each dangerous moment
(lib/core/faults.py: LAB_FAULT=<point> makes it kill itself there, as `kill -9` or a power cut would), then the same
command runs again. It must end with the numbers of an uninterrupted run, and nothing damaged may be reused.

| point                | killed while                                                | what the re-run must do            |
|----------------------|-------------------------------------------------------------|------------------------------------|
| report.finish        | the notebook's kernel writes the run's record               | keep the last good result, redo it |
| download.extract     | ECB+ is moved into place (old copy gone, new one not yet)   | extract again, no new download     |
| gguf.convert         | a GGUF's float checkpoint is written (no manifest yet)      | convert again, same files          |
| embeddings.write     | 04's mention-embedding cache is written (no checksum yet)   | compute again, same embeddings     |
| (checkpoint save)    | accelerate saves a training checkpoint (tests/training/test_checkpoint.py, marked `faults` too) | resume from the last complete save |
| train.checkpoint_saved | a notebook's training, right after a checkpoint (run_all.sh, CHECKPOINT_EVERY) | resume there, same numbers |
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mirror import build

from lib.core import paths
from lib.running import smoke_pins

pytestmark = pytest.mark.faults
ROOT = paths.ROOT


def _run(args: list[str], timeout: int = 900, fault: str = "", **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **{k: str(v) for k, v in env.items()}}
    full.pop("LAB_FAULT", None)
    if fault:
        full["LAB_FAULT"] = fault
    return subprocess.run(args, cwd=ROOT, env=full, capture_output=True, text=True, timeout=timeout)


def _headline(run_dir) -> dict:
    h = json.loads((run_dir / "metrics.json").read_text())["headline"]
    return {k: v for k, v in h.items() if not any(s in k for s in smoke_pins.VOLATILE)}


def test_a_kernel_killed_while_writing_its_record_keeps_the_last_good_result(data_dir, tmp_path):
    out = tmp_path / "out"
    run_all = ["bash", str(ROOT / "run_all.sh"), "--profile", "smoke", "--only", "01_ffnn/naive", "--no-download",
               "--data-dir", str(data_dir)]
    env = {"LAB_OUTPUTS": out, "LAB_PYTHON": sys.executable}
    first = _run(run_all, **env)
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    good = out / "01_ffnn" / "naive"
    record = (good / "metrics.json").read_bytes()

    killed = _run([*run_all, "--force"], fault="report.finish", **env)
    assert killed.returncode == 1 and "01_ffnn/naive" in killed.stderr, killed.stdout + killed.stderr[-3000:]
    assert (good / "metrics.json").read_bytes() == record  # the last good result is untouched
    assert (out / "01_ffnn" / "naive.failed").is_dir()    # the dead attempt is kept beside it, not over it
    assert json.loads((good / "run.json").read_text())["status"] == "ok"

    again = _run([*run_all, "--force"], **env)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    want = {k: v for k, v in json.loads(record)["headline"].items() if not any(s in k for s in smoke_pins.VOLATILE)}
    assert want and _headline(good) == want  # the same numbers as the uninterrupted run


def test_a_download_killed_while_moving_the_extracted_release_is_repaired(data_dir, tmp_path):
    folder, manifest = build(data_dir, tmp_path)
    dest = tmp_path / "data"
    fetch = [sys.executable, "-m", "lib.data.download", "--dest", str(dest), "--only", "ecbplus", "--mirror", str(folder)]
    env = {"LAB_DATASETS_MANIFEST": manifest}
    killed = _run(fetch, fault="download.extract", **env)
    assert killed.returncode == -9
    assert not (dest / "ecbplus" / ".ECB+.zip.extracted").exists()  # no marker: the release is known incomplete
    again = _run(fetch, **env)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert len(list((dest / "ecbplus" / "ECB+").glob("*/*.xml"))) == 982
    assert (dest / "ecbplus" / ".ECB+.zip.extracted").is_file()
    assert not [p.name for p in (dest / "ecbplus").iterdir() if ".extract-" in p.name or ".part-" in p.name]


_CONVERT = ("from lib.core import filehash; from lib.models import registry; "
            "p = registry._convert_gguf('SmolLM2-135M-Instruct', log=lambda *a: None); "
            "print(p); print(filehash.verify_manifest(p))")


def test_a_gguf_conversion_killed_before_its_manifest_is_done_again_with_the_same_files(tmp_path):
    cache = tmp_path / "cache"
    killed = _run([sys.executable, "-c", _CONVERT], fault="gguf.convert", LAB_CACHE=cache)
    assert killed.returncode == -9
    again = _run([sys.executable, "-c", _CONVERT], LAB_CACHE=cache)
    assert again.returncode == 0, again.stderr[-3000:]
    folder, problem = again.stdout.split()[-2:]
    assert problem == "None"  # every file matches the manifest written after it
    reference = _run([sys.executable, "-c", _CONVERT])  # never interrupted: the lab's own cache (the smoke run's)
    ref_folder = reference.stdout.split()[-2]
    digest = lambda d: {p.name: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
                        for p in sorted(Path(d).iterdir()) if p.is_file()}
    assert digest(folder) == digest(ref_folder)


_EMBED = r"""
import hashlib, json, sys
from lib.data import ecbplus
from lib.studies import first_stage
mentions = ecbplus.load_mentions(sys.argv[1], topics=[1, 2, 36])
ms = {sp: [m for m in mentions if m.split == sp] for sp in ("train", "dev", "test")}
emb = first_stage.embeddings_for("all-MiniLM-L6-v2", ms)
print(json.dumps({sp: {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in e.items()} for sp, e in emb.items()}))
"""


def test_an_embedding_cache_killed_before_its_checksum_is_never_reused(data_dir, tmp_path):
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-c", _EMBED, str(data_dir)]
    killed = _run(cmd, fault="embeddings.write", LAB_CACHE=cache)
    assert killed.returncode == -9
    again = _run(cmd, LAB_CACHE=cache)  # recomputes: the half-written file has no checksum and no final name
    assert again.returncode == 0, again.stderr[-3000:]
    reference = _run(cmd, LAB_CACHE=tmp_path / "reference")
    assert json.loads(again.stdout.splitlines()[-1]) == json.loads(reference.stdout.splitlines()[-1])
    warm = _run(cmd, LAB_CACHE=cache)  # and what the re-run cached verifies and reads back the same
    assert json.loads(warm.stdout.splitlines()[-1]) == json.loads(reference.stdout.splitlines()[-1])


def test_a_notebook_killed_in_training_resumes_from_its_checkpoint_with_the_same_numbers(data_dir, tmp_path):
    """run_all.sh's run of 01 (smoke: 5 optimiser steps, a checkpoint after each) is killed right after its third
    checkpoint; run again, it resumes at step 3 and ends with the numbers of an uninterrupted run. TRACK rides along:
    the finished run's folder holds the training curves, read back from the TensorBoard event files."""
    def run_all(out, fault=""):
        code = ("import sys; from lib.running import runner, profiles; "
                "profiles.RUNS['smoke'] = [('01_ffnn', 'resume', {'CHECKPOINT_EVERY': 1, 'TRACK': 'tensorboard'})]; "
                f"sys.exit(runner.main(['--profile', 'smoke', '--no-download', '--data-dir', {str(data_dir)!r}]))")
        return _run([sys.executable, "-c", code], fault=fault, LAB_OUTPUTS=out)

    whole = run_all(tmp_path / "whole")
    assert whole.returncode == 0, whole.stdout + whole.stderr[-3000:]
    out = tmp_path / "out"
    killed = run_all(out, fault="train.checkpoint_saved@3")
    assert killed.returncode == 1 and "01_ffnn/resume" in killed.stderr, killed.stdout + killed.stderr[-3000:]
    ckpt = out / "01_ffnn" / "resume.checkpoints" / "training-01"
    assert json.loads((ckpt / "latest.json").read_text())["step"] == 3  # the last complete save survived the kill

    again = run_all(out)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    run = out / "01_ffnn" / "resume"
    notebook = (run / "notebook.ipynb").read_text()
    assert "resumed from" in notebook and "at step 3" in notebook
    assert _headline(run) == _headline(tmp_path / "whole" / "01_ffnn" / "resume")
    assert not (out / "01_ffnn" / "resume.checkpoints").exists()  # a finished run keeps no checkpoints

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = sorted((run / "tracking").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event files in the run folder"
    steps = set()
    for e in events:  # the killed attempt's curve is not in this folder: only the resumed one (steps 4 and 5)
        acc = EventAccumulator(str(e.parent))
        acc.Reload()
        if "train_loss" in acc.Tags()["scalars"]:
            steps |= {ev.step for ev in acc.Scalars("train_loss")}
    assert steps == {4, 5}, steps
    assert "tensorboard --logdir tracking" in (run / "report.html").read_text()


def test_a_rank_killed_in_training_fails_the_run_naming_it_and_the_rerun_resumes_on_both(data_dir, tmp_path):
    """01 on 2 processes (run_all.sh --num-processes 2; smoke: a checkpoint after each step): rank 1 alone is killed
    right after the second checkpoint. The run fails naming rank 1, its files kept in the failed attempt; run again
    on 2 processes, both ranks resume at step 2 and the run ends with the numbers of an uninterrupted 2-process run."""
    def run_all(out, fault=""):
        code = ("import sys; from lib.running import runner, profiles; "
                "profiles.RUNS['smoke'] = [('01_ffnn', 'ranks', {'CHECKPOINT_EVERY': 1})]; "
                f"sys.exit(runner.main(['--profile', 'smoke', '--no-download', '--data-dir', {str(data_dir)!r}, "
                "'--num-processes', '2']))")
        return _run([sys.executable, "-c", code], fault=fault, LAB_OUTPUTS=out, LAB_FAULT_RANK="1")

    whole = run_all(tmp_path / "whole")
    assert whole.returncode == 0, whole.stdout + whole.stderr[-3000:]
    out = tmp_path / "out"
    killed = run_all(out, fault="train.checkpoint_saved@2")
    assert killed.returncode == 1 and "01_ffnn/ranks" in killed.stderr, killed.stdout + killed.stderr[-3000:]
    assert "failed" in killed.stdout and "rank 1:" in killed.stdout, killed.stdout
    attempt = out / "01_ffnn" / "ranks"  # no good result before it: the failed attempt is the run folder
    assert "rank 1: DeadKernelError" in json.loads((attempt / "run.json").read_text())["error"]  # rank 0 may be named too
    assert (attempt / "ranks" / "rank-1" / "notebook.ipynb").is_file()  # what rank 1 did, kept for reading
    ckpt = out / "01_ffnn" / "ranks.checkpoints" / "training-01"
    assert json.loads((ckpt / "latest.json").read_text())["step"] == 2

    again = run_all(out)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    run = out / "01_ffnn" / "ranks"
    assert "at step 2" in (run / "notebook.ipynb").read_text()
    assert _headline(run) == _headline(tmp_path / "whole" / "01_ffnn" / "ranks")
    assert json.loads((run / "metrics.json").read_text())["num_processes"] == 2
    assert not (out / "01_ffnn" / "ranks.checkpoints").exists() and not (run / "ranks").exists()
