"""run_all's runner without the real notebooks: a clean terminal (kernel noise goes to the run's kernel.log),
expected time left from measured runs, and the link walker that checks index.html and every report."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import runner_script

from lib.core import paths
from lib.running import index, profiles, runner, timings


def test_expected_time_left_from_the_last_measured_runs(tmp_path):
    assert timings.expected_left("cpu", ["a/x"], {}) == "time left unknown: no earlier run measured"
    timings.record_timing("cpu", "a/x", 100.0, tmp_path)
    timings.record_timing("cpu", "b/y", 200.0, tmp_path)
    timings.record_timing("smoke", "a/x", 5.0, tmp_path)
    t = timings.load_timings(tmp_path)
    assert t == {"cpu": {"a/x": 100.0, "b/y": 200.0}, "smoke": {"a/x": 5.0}}
    assert timings.expected_left("cpu", ["a/x", "b/y"], t) == "about 5 min left"       # 300 s
    assert timings.expected_left("cpu", ["b/y", "c/z"], t) == "about 3 min left + 1 run(s) never measured"
    assert timings.expected_left("smoke", ["a/x"], t) == "about 5 s left"



def test_a_first_run_estimates_from_the_shipped_reference_rescaled_as_runs_finish(tmp_path):
    reference = {"cpu": {"a/x": 100.0, "b/y": 200.0, "c/z": 300.0}}  # seconds on the reference machine
    keys = ["a/x", "b/y", "c/z"]
    assert timings.expected_left("cpu", keys, {}, reference) == (
        "about 10 min left; reference timings, not yet rescaled to this machine")  # 600 s, speed 1 for now
    measured = timings.record_timing("cpu", "a/x", 120.0, tmp_path)  # this machine: 1.2 x the reference
    assert timings.speed("cpu", measured, reference) == (1.2, 1)
    assert timings.expected_left("cpu", keys[1:], measured, reference) == (
        "about 10 min left; reference timings x 1.20, this machine's speed from 1 finished run(s)")  # 500 x 1.2
    assert timings.expected("cpu", "a/x", measured, reference) == 120.0  # a run measured here: its own time
    assert timings.time_limit("cpu", "c/z", measured, reference=reference) == pytest.approx(3 * 300 * 1.2)
    assert timings.expected_left("cpu", ["d/new"], measured, reference) == "time left unknown: no earlier run measured"
    # on 2 processes (--num-processes 2): timed under its own key, estimated by its 1-process time until then
    assert timings.expected("cpu", "a/x x2", measured, reference) == 120.0
    assert timings.expected("cpu", "c/z x2", measured, reference) == pytest.approx(300 * 1.2)
    measured = timings.record_timing("cpu", "a/x x2", 70.0, tmp_path)
    assert timings.expected("cpu", "a/x x2", measured, reference) == 70.0 and measured["cpu"]["a/x"] == 120.0


def test_write_reference_takes_a_full_run_s_timings_and_names_the_machine(tmp_path):
    out, ref = tmp_path / "out", tmp_path / "reference.json"
    timings.record_timing("cpu", "a/x", 90.0, out)
    timings.record_timing("cpu", "b/y", 30.0, out)
    written = timings.write_reference("cpu", out, ref)
    assert timings.load_reference(ref) == {"cpu": {"a/x": 90.0, "b/y": 30.0}}
    assert written["measured"]["cpu"]["total_minutes"] == 2.0 and "cores" in written["measured"]["cpu"]["machine"]
    with pytest.raises(SystemExit, match="no smoke timings"):
        timings.write_reference("smoke", out, ref)


def test_the_shipped_reference_covers_the_cpu_and_smoke_plans():
    reference = timings.load_reference()
    for profile in ("cpu", "smoke"):
        planned = {f"{nb}/{run}" for nb, run, _ in profiles.RUNS[profile]}
        assert planned <= reference.get(profile, {}).keys(), planned - reference.get(profile, {}).keys()


NOISY = [
    "import os, sys\n"
    "os.write(2, b'Kernel is running over TCP without encryption\\n')\n"
    "print('zmq.error.ZMQError: Address already in use', file=sys.__stderr__, flush=True)\n"
    "os.write(1, b'KeyboardInterrupt caught in kernel\\n')",
    "import json, os\n"
    "json.dump({'params': {'OUTPUT_DIR': OUTPUT_DIR}, 'headline': {}}, open(os.path.join(OUTPUT_DIR, 'metrics.json'), 'w'))",
]


def _noisy_notebook(folder):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell("PROFILE = 'smoke'  # profile\nOUTPUT_DIR = ''  # where\nDATA_DIR = ''  # data")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p] + [nbformat.v4.new_code_cell(c) for c in NOISY]
    nbformat.write(nb, folder / "99_noisy.ipynb")


def test_terminal_shows_one_clean_line_per_run_and_the_kernel_log_keeps_the_noise(tmp_path):
    (tmp_path / "nb").mkdir()
    _noisy_notebook(tmp_path / "nb")
    out = tmp_path / "out"
    code = runner_script(tmp_path / "nb", [("99_noisy", "a", {}), ("99_noisy", "b", {})])
    env = {**os.environ, "LAB_OUTPUTS": str(out)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    terminal = proc.stdout + proc.stderr
    for noise in ("without encryption", "Address already in use", "KeyboardInterrupt", "Traceback"):
        assert noise not in terminal, terminal
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    assert len(lines) == 2
    assert "[1/2] 99_noisy/a (time left unknown" in lines[0] and " ... ok (" in lines[0]
    assert "[2/2] 99_noisy/b (time left unknown" in lines[1]
    log = (out / "99_noisy" / "a" / "kernel.log").read_text()
    assert "without encryption" in log and "Address already in use" in log and "KeyboardInterrupt caught" in log
    assert json.loads((out / "timings.json").read_text())["smoke"].keys() == {"99_noisy/a", "99_noisy/b"}
    assert index.broken_links(out) == []
    again = subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert "[1/2] 99_noisy/a (about " in again.stdout and "[2/2] 99_noisy/b (about " in again.stdout


def test_broken_links_finds_missing_targets_and_empty_images(tmp_path):
    run = tmp_path / "01_x" / "r"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "curve.png").write_bytes(b"png")
    (run / "report.html").write_text("<html><a href='#top'>x</a><a href='https://example.org'>ext</a>"
                                     f"<img src='data:image/png;base64,{'A' * 200}'><img src='data:image/png;base64,'>"
                                     "<a href='figures/gone.png'>gone</a></html>")
    (tmp_path / "index.html").write_text("<a href='01_x/r/report.html'>report</a>"
                                         "<img src='01_x/r/figures/curve.png'><a href='01_x/r/metrics.json'>m</a>")
    problems = index.broken_links(tmp_path)
    assert len(problems) == 3
    assert any("index.html: <a> 01_x/r/metrics.json" in p for p in problems)
    assert any("report.html: <a> figures/gone.png" in p for p in problems)
    assert any("embedded image is empty" in p for p in problems)
    (run / "metrics.json").write_text("{}")
    (run / "figures" / "gone.png").write_bytes(b"png")
    (run / "report.html").write_text("<img src='figures/gone.png'>")
    assert index.broken_links(tmp_path) == []


def test_finished_run_with_same_parameters_code_and_data_is_cached(tmp_path, monkeypatch):
    """Same parameters, code and data: 'cached'; a changed data file or --force: executed again."""
    data = tmp_path / "data" / "semeval2018_ec"
    data.mkdir(parents=True)
    (data / "f.txt").write_text("x")
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path / "out")
    calls = []
    import papermill as pm

    def fake_execute(src, dst, parameters, **kw):
        calls.append(parameters)
        (Path(parameters["OUTPUT_DIR"]) / "metrics.json").write_text(json.dumps({"params": {}, "headline": {}}))
        (Path(dst)).write_text(nbformat.writes(nbformat.v4.new_notebook()))
    monkeypatch.setattr(pm, "execute_notebook", fake_execute)
    args = ("01_ffnn", "naive", {"TRAINING": {"max_steps": 1}}, "smoke", str(tmp_path / "data"))
    assert runner.execute(*args, force=False)["status"] == "ok"
    assert runner.execute(*args, force=False)["status"] == "cached" and len(calls) == 1
    assert runner.execute(*args, force=True)["status"] == "ok" and len(calls) == 2
    (data / "f.txt").write_text("changed")
    assert runner.execute(*args, force=False)["status"] == "ok" and len(calls) == 3
    assert runner.execute("01_ffnn", "naive", {"TRAINING": {"max_steps": 2}}, "smoke", str(tmp_path / "data"),
                          force=False)["status"] == "ok" and len(calls) == 4   # other parameters
    assert not list((tmp_path / "out" / "01_ffnn").glob(".naive.tmp*"))


def test_a_run_in_progress_is_not_entered_twice(tmp_path, monkeypatch):
    import fcntl
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path)
    (tmp_path / "01_ffnn").mkdir()
    with open(tmp_path / "01_ffnn" / ".naive.lock", "w") as f:
        f.write("4242")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        code = ("import sys, json; from pathlib import Path; from lib.running import runner; from lib.core import paths; "
                f"paths.OUTPUTS = Path({str(tmp_path)!r}); "
                "print(json.dumps(runner.execute('01_ffnn', 'naive', {}, 'smoke', '')))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT, capture_output=True, text=True, timeout=120)
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rec["status"] == "failed" and "being written by another run (pid 4242)" in rec["error"]


def test_hand_made_runs_land_in_folders_named_by_their_parameters():
    from lib.running import params
    P = params.Params({"PROFILE": "cpu", "EPOCHS": 5, "LR": 1e-4, "OUTPUT_DIR": "", "SEED": 0})
    a = params.hand_run_name(P, {"EPOCHS", "LR", "PROFILE"})
    assert a.startswith("hand-cpu-EPOCHS=5,LR=0.0001-") and len(a.split("-")[-1]) == 8
    assert params.hand_run_name(P, {"PROFILE"}).startswith("hand-cpu-defaults-")
    assert params.hand_run_name(P, {"EPOCHS"}) != a


def test_index_page_lists_runs_escapes_text_and_links_resolve(tmp_path):
    """build_index (jinja2, autoescaped) on a hand-made outputs folder: one good run with metrics, a figure and a
    report; one failed run whose error holds markup. The failure is listed and escaped, every link resolves."""
    good, bad = tmp_path / "01_x" / "good", tmp_path / "01_x" / "bad"
    (good / "figures").mkdir(parents=True)
    bad.mkdir(parents=True)
    (good / "figures" / "curve.png").write_bytes(b"png")
    (good / "report.html").write_text("<html></html>")
    (good / "metrics.json").write_text(json.dumps({"headline": {"val_macro_f1": 0.51234, "steps": 7},
                                                   "study": [{"model": "paper", "f1": 0.6}],
                                                   "notes": ["capped <100> rows"], "peak_rss_mb": 1234.4}))
    for d, status, err in ((good, "ok", None), (bad, "failed", "SPLIT=<b>nope</b> is not one of kfold | dev")):
        (d / "run.json").write_text(json.dumps({"notebook": "01_x", "run": d.name, "profile": "smoke", "status": status,
                                                "error": err, "elapsed_seconds": 12.6}))
    page = index.build_index(tmp_path).read_text()
    assert "<h2>Failures</h2>" in page and "SPLIT=&lt;b&gt;nope&lt;/b&gt;" in page and "<b>nope</b>" not in page
    assert "val_macro_f1: <b>0.512</b>" in page and "steps: <b>7</b>" in page and "1234 MB" in page
    assert "model paper, f1 0.6" in page and "capped &lt;100&gt; rows" in page and ">13s<" in page
    assert page.count("class='failed'") == 1 and "2 runs;" in page
    assert "href='01_x/good/report.html'" in page and "src='01_x/good/figures/curve.png'" in page
    assert index.broken_links(tmp_path) == []


def test_only_picks_a_notebook_or_one_run_of_it():
    from lib.running import runner
    assert {nb for nb, _, _ in runner.plan("cpu", ["encoders"])} == {"02_encoders"}
    assert [(nb, name) for nb, name, _ in runner.plan("cpu", ["02_encoders/minilm-improved"])] == [
        ("02_encoders", "minilm-improved")]
    assert [name for _, name, _ in runner.plan("cpu", ["ffnn/naive", "01/improved"])] == ["naive", "improved"]
    with pytest.raises(SystemExit, match="02_encoders/minilm-naive"):  # the error lists the runs one can pick
        runner.plan("cpu", ["02_encoders/no-such-run"])
    # an opt-in run: made only when named whole, never by its notebook's name or by the default plan
    assert ("03_qlora_decoders", "gemma-3-270m-naive") not in [(nb, n) for nb, n, _ in runner.plan("cpu")]
    assert "gemma-3-270m-naive" not in [n for _, n, _ in runner.plan("cpu", ["03_qlora_decoders"])]
    assert [n for _, n, _ in runner.plan("cpu", ["02_encoders"])] == ["minilm-improved"]  # the encoders' naive: opt-in
    assert [n for _, n, _ in runner.plan("smoke", ["02_encoders"])] == ["minilm-naive", "minilm-improved"]
    assert runner.plan("cpu", ["02_encoders/minilm-naive"])[0][2]["THRESHOLDS"] == "fixed"
    picked = runner.plan("cpu", ["03_qlora_decoders/gemma-3-270m-naive", "ffnn/naive"])
    assert [(nb, n) for nb, n, _ in picked] == [("01_ffnn", "naive"), ("03_qlora_decoders", "gemma-3-270m-naive")]
    assert picked[1][2]["CLASS_WEIGHTS"] is False
    with pytest.raises(SystemExit, match="03_qlora_decoders/gemma-3-270m-naive"):  # listed among the known runs
        runner.plan("cpu", ["03_qlora_decoders/nope"])
