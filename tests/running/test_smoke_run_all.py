"""The real entry point at smoke size: ./run_all.sh --profile smoke on the real data, then check every output."""
import csv
import json
import math
import os
import re
import subprocess
import sys

import pytest
from mirror import build, serve

from lib.core import paths
from lib.running import browser, claims, index, profiles, smoke_pins

ROOT = paths.ROOT


@pytest.fixture(scope="module")
def smoke_outputs(data_dir, tmp_path_factory):
    """./run_all.sh --profile smoke as a person on a fresh machine runs it: an empty data folder, the datasets fetched
    by the runner's pre-flight (here from a mirror of the real files served on 127.0.0.1: no internet), then every run."""
    out, tmp = tmp_path_factory.mktemp("outputs"), tmp_path_factory.mktemp("fetch")
    folder, manifest = build(data_dir, tmp)
    with serve(folder) as (url, _):
        env = {**os.environ, "LAB_OUTPUTS": str(out), "LAB_PYTHON": sys.executable, "DATA_DIR": str(tmp / "data"),
               "LAB_DATA_MIRROR": url, "LAB_DATASETS_MANIFEST": str(manifest)}
        env.pop("LAB_DOWNLOAD", None)
        proc = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "smoke"],
                              env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"run_all.sh failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return out, proc.stdout


def test_the_first_run_fetched_every_dataset_it_reads(smoke_outputs):
    _, stdout = smoke_outputs
    for name in ("semeval", "ecbplus", "squad", "minbert", "sick"):
        assert re.search(rf"^data: {name}: fetched \d+ file\(s\), [\d.]+ MB from http://127.0.0.1:\d+/\S*, "
                         r"(gitblob/)?sha256 checksums verified", stdout, re.M), (name, stdout[:3000])
    assert "ecbplus/ECB+.zip extracted and checked" in stdout


@pytest.mark.parametrize("nb,run", [(nb, run) for nb, run, _ in profiles.RUNS["smoke"]])
def test_every_run_leaves_its_outputs(smoke_outputs, nb, run):
    out, stdout = smoke_outputs
    d = out / nb / run
    assert re.search(rf"\] {re.escape(nb)}/{re.escape(run)} \(.*\) \.\.\. ok \(", stdout)  # one progress line per run
    for f in ("notebook.ipynb", "report.html", "metrics.json", "run.json"):
        assert (d / f).is_file(), f"missing {d / f}"
    m = json.loads((d / "metrics.json").read_text())
    assert m["profile"] == "smoke" and m["params"]["OUTPUT_DIR"] == str(d)
    assert m["headline"], "no headline metrics"
    for k, v in m["headline"].items():
        assert isinstance(v, (int, float)) and math.isfinite(v), f"{k}={v}"
        if any(s in k for s in ("f1", "jaccard", "acc", "em")):
            top = 100 if nb == "05_qa" else 1  # SQuAD's EM/F1 are percentages (the official script's scale)
            assert 0 <= v <= top, f"{k}={v} out of range [0, {top}]"
    for k in ("wall_seconds", "peak_rss_mb", "versions", "git_commit", "params", "stage_seconds"):
        assert k in m
    st = m["stage_seconds"]
    assert set(st) == {"load", "train", "predict", "other"}
    assert sum(st.values()) == pytest.approx(m["wall_seconds"], abs=0.5)  # the stages split the wall time, no more
    if nb != "07_emotion_ensemble":  # 07 blends saved probabilities: it loads the data, trains nothing
        assert st["train"] > 0 and st["predict"] > 0 and st["load"] > 0, st
    assert list((d / "figures").glob("*.png")), "no figures"
    html = (d / "report.html").read_text()
    assert "<html" in html.lower() and "Traceback" not in html and "it/s]" not in html  # no progress-bar spam
    if (d / "submission.csv").exists() or nb[:2] in ("01", "02", "03"):
        with open(d / "submission.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0][0] == "ID" and len(rows[0]) == 12
        n = profiles.SMOKE_TEST_TWEETS  # smoke predicts a slice of the 3,259 test tweets, and says so
        assert len(rows) - 1 == n and len({r[0] for r in rows[1:]}) == n
        assert all(v in ("0", "1") for r in rows[1:] for v in r[1:])
        if nb != "07_emotion_ensemble":
            assert any(c.startswith(f"MAX_TEST_SAMPLES={n}: {n} of 3259 test tweets") and "incomplete" in c
                       for c in m["caps"]), m["caps"]


def test_index_lists_every_run(smoke_outputs):
    out, _ = smoke_outputs
    page = (out / "index.html").read_text()
    for nb, run, _ in profiles.RUNS["smoke"]:
        assert f"{nb}/{run}/report.html" in page


def test_smoke_metrics_match_the_pinned_values(smoke_outputs):
    """The regression tier: each smoke run's headline metrics against tests/expected_smoke_metrics.json, within
    lib.running.smoke_pins's stated tolerance. Refresh deliberately with `python -m lib.running.smoke_pins update <outputs>`."""
    out, _ = smoke_outputs
    problems = smoke_pins.compare(smoke_pins.collect(out), json.loads(smoke_pins.EXPECTED.read_text()))
    assert not problems, "\n".join(problems)


def test_every_link_and_image_of_the_index_and_reports_resolves(smoke_outputs):
    out, _ = smoke_outputs
    assert index.broken_links(out) == []


def test_scorecard_has_a_verdict_for_every_claim(smoke_outputs):
    out, _ = smoke_outputs
    page = (out / "index.html").read_text(encoding="utf-8")
    missing = [c.id for c in claims.CLAIMS if f"id='smoke-claim-{c.id}'" not in page]
    assert not missing, f"claims without a scorecard row: {missing}"
    assert "<table" in page[page.index("</section>"):]  # the run table stays, below the scorecard


def test_index_and_reports_as_a_reader_sees_them(smoke_outputs, chromium):
    """Headless Chromium: no console error, every image decodes, every link and anchor resolves, the summary card
    (the scorecard on the index) on the first screen; screenshots in <outputs>/screenshots."""
    out, _ = smoke_outputs
    problems = browser.check_site(out, out / "screenshots", chromium)
    assert not problems, "\n".join(problems)
    assert (out / "screenshots" / "index.png").is_file()


def test_terminal_is_clean_and_kernel_logs_are_kept(smoke_outputs):
    out, stdout = smoke_outputs
    for noise in ("without encryption", "Address already in use", "KeyboardInterrupt", "Traceback"):
        assert noise not in stdout
    for nb, run, _ in profiles.RUNS["smoke"]:
        assert (out / nb / run / "kernel.log").is_file()


def test_failing_notebook_is_reported_and_others_continue(data_dir, tmp_path):
    """A bad parameter makes one run fail: its partial notebook/HTML are kept, index lists it, exit code 1."""
    env = {**os.environ, "LAB_OUTPUTS": str(tmp_path)}
    code = ("import sys; from lib.running import runner, profiles; "
            "profiles.RUNS['smoke'] = [('01_ffnn', 'bad', {'SPLIT': 'nope'}), ('01_ffnn', 'good', {})]; "
            f"sys.exit(runner.main(['--profile', 'smoke', '--data-dir', {str(data_dir)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "FAILED: 01_ffnn/bad" in proc.stderr
    assert "SPLIT='nope' is not one of" in proc.stdout
    bad = json.loads((tmp_path / "01_ffnn" / "bad" / "run.json").read_text())
    assert bad["status"] == "failed" and (tmp_path / "01_ffnn" / "bad" / "report.html").exists()
    assert json.loads((tmp_path / "01_ffnn" / "good" / "run.json").read_text())["status"] == "ok"
    assert "Failures" in (tmp_path / "index.html").read_text()
