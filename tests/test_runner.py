"""run_all's runner without the real notebooks: a clean terminal (kernel noise goes to the run's kernel.log),
expected time left from measured runs, and the link walker that checks index.html and every report."""
import json
import os
import subprocess
import sys

import nbformat

from lib import paths, runner


def test_expected_time_left_from_the_last_measured_runs(tmp_path):
    assert runner.expected_left("cpu", ["a/x"], {}) == "time left unknown: no earlier run measured"
    runner.record_timing("cpu", "a/x", 100.0, tmp_path)
    runner.record_timing("cpu", "b/y", 200.0, tmp_path)
    runner.record_timing("smoke", "a/x", 5.0, tmp_path)
    t = runner.load_timings(tmp_path)
    assert t == {"cpu": {"a/x": 100.0, "b/y": 200.0}, "smoke": {"a/x": 5.0}}
    assert runner.expected_left("cpu", ["a/x", "b/y"], t) == "about 5 min left"       # 300 s
    assert runner.expected_left("cpu", ["b/y", "c/z"], t) == "about 3 min left + 1 run(s) never measured"
    assert runner.expected_left("smoke", ["a/x"], t) == "about 5 s left"


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
    code = ("import sys; from pathlib import Path; from lib import runner, profiles, paths; "
            f"paths.NOTEBOOKS = Path({str(tmp_path / 'nb')!r}); "
            "profiles.RUNS['smoke'] = [('99_noisy', 'a', {}), ('99_noisy', 'b', {})]; "
            "sys.exit(runner.main(['--profile', 'smoke']))")
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
    assert runner.broken_links(out) == []
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
    problems = runner.broken_links(tmp_path)
    assert len(problems) == 3
    assert any("index.html: <a> 01_x/r/metrics.json" in p for p in problems)
    assert any("report.html: <a> figures/gone.png" in p for p in problems)
    assert any("embedded image is empty" in p for p in problems)
    (run / "metrics.json").write_text("{}")
    (run / "figures" / "gone.png").write_bytes(b"png")
    (run / "report.html").write_text("<img src='figures/gone.png'>")
    assert runner.broken_links(tmp_path) == []
