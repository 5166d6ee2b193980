"""The runner under trouble: a hung run stopped by its time limit, leftovers of killed runners, damaged JSON files,
files written whole or not at all, and the Colab/Kaggle token in place before the memory check."""
import json
import os
import sys
import time
import types
from pathlib import Path

import nbformat
import pytest
from conftest import runner_script

from lib.core import paths
from lib.reporting import runs
from lib.running import attempts, index, runner, timings


def _notebook(folder: Path, name: str, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell("PROFILE = 'smoke'  # profile\nOUTPUT_DIR = ''  # where\nDATA_DIR = ''  # data")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, folder / f"{name}.ipynb")


def test_a_hung_run_is_stopped_at_its_time_limit(tmp_path, monkeypatch):
    """A kernel that never returns (a hung download) is stopped after the limit, with the child it started; the run
    is recorded as failed, naming the limit, and the runner goes on."""
    monkeypatch.setattr(paths, "NOTEBOOKS", tmp_path)
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path / "out")
    child = tmp_path / "child.pid"
    _notebook(tmp_path, "98_hang", f"import subprocess, time\n"
                                   f"p = subprocess.Popen(['sleep', '300'])\n"
                                   f"open({str(child)!r}, 'w').write(str(p.pid))\n"
                                   f"time.sleep(300)")
    t0 = time.time()
    rec = runner.execute("98_hang", "r", {}, "smoke", "", limit=8)
    took = time.time() - t0
    assert rec["status"] == "failed" and "time limit 8 s exceeded" in rec["error"], rec
    assert took < 120, took
    assert not _running(int(child.read_text()))  # the kernel's process group went with it


def _running(pid: int, wait: float = 10.0) -> bool:
    """Whether process `pid` still runs after up to `wait` seconds (a killed one may stay a zombie until reaped)."""
    t0 = time.time()
    while time.time() - t0 < wait:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.2)
    return True


def test_the_time_limit_comes_from_measured_time_a_flag_or_the_environment(monkeypatch):
    monkeypatch.delenv(timings.TIME_LIMIT_ENV, raising=False)
    measured = {"cpu": {"a/x": 400.0, "a/y": 10.0}}
    assert timings.time_limit("cpu", "a/x", measured) == 400.0 * timings.TIME_LIMIT_FACTOR
    assert timings.time_limit("cpu", "a/y", measured) == timings.MIN_TIME_LIMIT
    assert timings.time_limit("cpu", "a/new", measured) == timings.UNMEASURED_LIMIT["cpu"]
    monkeypatch.setenv(timings.TIME_LIMIT_ENV, "50")
    assert timings.time_limit("cpu", "a/x", measured) == 50.0
    assert timings.time_limit("cpu", "a/x", measured, override=0) is None  # --time-limit 0: none
    assert timings.time_limit("cpu", "a/x", measured, override=70) == 70.0


def _run_dir(d: Path, status="ok", **extra):
    d.mkdir(parents=True)
    rec = {"notebook": d.parent.name, "run": d.name, "profile": "smoke", "status": status, "error": None,
           "elapsed_seconds": 1.0, **extra}
    (d / "run.json").write_text(json.dumps(rec))
    (d / "metrics.json").write_text(json.dumps({"headline": {"f1": 0.5}}))


def test_leftovers_of_killed_runners_are_not_listed_and_are_cleaned_up(tmp_path):
    nb = tmp_path / "01_x"
    _run_dir(nb / "a")
    _run_dir(nb / ".a.tmp-999991")  # a runner killed mid-run: its half-made attempt (a copied run.json in it)
    _run_dir(nb / ".a.old-999992")  # killed between its two renames with `a` already in place: stale
    _run_dir(nb / ".b.old-999993")  # killed between its two renames: `b` is gone, its good result is here
    assert [(r["run"], r["attempt"]) for r in index.collect_runs(tmp_path)] == [("a", "")]  # no duplicate rows
    done = attempts.sweep(tmp_path)
    assert len(done) == 3, done
    assert sorted(p.name for p in nb.iterdir() if not p.name.endswith(".lock")) == ["a", "a.failed", "b"]
    assert runs.read_json(nb / "a.failed" / "run.json")["status"] == "interrupted"
    assert runs.read_json(nb / "a" / "run.json")["status"] == "ok"
    assert runs.read_json(nb / "b" / "run.json")["status"] == "ok"


def test_damaged_json_is_named_instead_of_stopping_the_runner(tmp_path, capsys):
    _run_dir(tmp_path / "01_x" / "good")
    _run_dir(tmp_path / "01_x" / "cut")
    (tmp_path / "01_x" / "cut" / "run.json").write_text('{"notebook": "01_x", "run": "cu')
    _run_dir(tmp_path / "01_x" / "halfmetrics")
    (tmp_path / "01_x" / "halfmetrics" / "metrics.json").write_text('{"headline": {"f1": 0.')
    (tmp_path / "timings.json").write_text('{"smoke": {"01_x/good": 1')
    rows = {r["run"]: r for r in index.collect_runs(tmp_path)}
    assert rows["good"]["status"] == "ok"
    assert rows["cut"]["status"] == "damaged" and "cut/run.json:1:" in rows["cut"]["error"]
    assert "halfmetrics/metrics.json:1:" in rows["halfmetrics"]["error"]
    page = index.build_index(tmp_path).read_text()
    assert "damaged JSON" in page
    assert timings.load_timings(tmp_path) == {}
    assert f"{tmp_path / 'timings.json'}:1:" in capsys.readouterr().err
    assert not runner.cached(tmp_path / "01_x" / "cut", {})


def test_index_and_timings_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A crash (disk full) while writing leaves the previous index.html and timings.json intact."""
    _run_dir(tmp_path / "01_x" / "good")
    timings.record_timing("smoke", "01_x/good", 12.0, tmp_path)
    index.build_index(tmp_path)
    before = (tmp_path / "index.html").read_text(), (tmp_path / "timings.json").read_text()
    real = Path.write_text

    def half_then_full_disk(self, text, *a, **kw):
        real(self, text[: len(text) // 2], *a, **kw)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", half_then_full_disk)
    with pytest.raises(OSError):
        index.build_index(tmp_path)
    with pytest.raises(OSError):
        timings.record_timing("smoke", "01_x/good", 99.0, tmp_path)
    monkeypatch.setattr(Path, "write_text", real)
    assert ((tmp_path / "index.html").read_text(), (tmp_path / "timings.json").read_text()) == before


def test_the_colab_token_is_in_the_environment_before_the_memory_check_reads_the_config(monkeypatch):
    import torch
    import transformers

    from lib.running import memory, params
    seen = []

    def from_pretrained(name, *a, **kw):
        seen.append(os.environ.get("HF_TOKEN"))
        raise OSError("gated")  # the check then skips, as it does for an unreadable config
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", from_pretrained)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=lambda key: "hf_secret" if key == "HF_TOKEN" else None)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    try:
        P = params.Params({"MODEL": "google/gemma-2b", "BATCH_SIZE": 8, "MAX_LENGTH": 64})
        assert memory.check_run(P.MODEL, P.BATCH_SIZE, P.MAX_LENGTH) is None
    finally:
        os.environ.pop("HF_TOKEN", None)
    assert seen == ["hf_secret"]


def test_a_runner_killed_mid_run_leaves_the_last_good_result_and_the_next_one_keeps_the_attempt(tmp_path):
    """kill -9 of run_all's runner while it re-runs a finished run: the good result stays in place; the next runner
    turns the leftover temporary folder into the run's failed attempt (status interrupted), lists both in the index
    and still finds the good result cached."""
    import signal
    import subprocess
    (tmp_path / "nb").mkdir()
    marker = tmp_path / "kernel.pid"
    _notebook(tmp_path / "nb", "97_slow",
              "import json, os, time\n"
              f"if os.environ.get('FAKE_HANG'):\n    open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
              "    time.sleep(300)\n"
              "json.dump({'params': {'OUTPUT_DIR': OUTPUT_DIR}, 'headline': {'f1': 0.5}}, "
              "open(os.path.join(OUTPUT_DIR, 'metrics.json'), 'w'))")
    out = tmp_path / "out"
    code = runner_script(tmp_path / "nb", [("97_slow", "r", {})])
    env = {**os.environ, "LAB_OUTPUTS": str(out)}
    first = subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    proc = subprocess.Popen([sys.executable, "-c", code, "--force"], cwd=paths.ROOT, env={**env, "FAKE_HANG": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not marker.exists() and time.time() - t0 < 200:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with __import__("contextlib").suppress(OSError):
        os.kill(int(marker.read_text()), signal.SIGKILL)  # the orphaned kernel (its own session)
    assert list((out / "97_slow").glob(".r.tmp-*"))
    again = subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert "cleaned up:" in again.stdout and "kept as r.failed" in again.stdout, again.stdout
    assert "97_slow/r (" in again.stdout and "... cached (" in again.stdout
    assert runs.read_json(out / "97_slow" / "r" / "run.json")["status"] == "ok"
    assert runs.read_json(out / "97_slow" / "r.failed" / "run.json")["status"] == "interrupted"
    assert not list((out / "97_slow").glob(".r.*-*"))
    page = (out / "index.html").read_text()
    runs_table = page.split('<table id="runs">')[1].split("</table>")[0]  # the run table, below the scorecard
    assert runs_table.count("<tr") == 3 and "failed attempt after the last good result" in page  # header + 2 rows
