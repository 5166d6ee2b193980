"""The scorecard's pieces against hand-worked cases: bootstrap intervals (a known binomial, a paired difference of
zero), verdicts, the claims registry's consistency, the report's card and folding, and a scorecard built from a
synthetic 06 run folder."""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lib.core.errors import LabError
from lib.evaluation import bootstrap
from lib.running import claims, profiles, report_html, scorecard
from lib.studies import evidence


def mean_of(x):
    return lambda s: float(x[s].mean())


def test_binomial_interval_matches_the_normal_approximation():
    # 200 successes in 400 trials: p = 0.5, standard error sqrt(0.25 / 400) = 0.025, 95% half-width 1.96 * 0.025 = 0.049
    x = np.array([1] * 200 + [0] * 200)
    ci = bootstrap.interval(mean_of(x), {"s": 400}, seed=1, resamples=4000)
    assert ci.value == 0.5
    assert ci.low == pytest.approx(0.451, abs=0.01) and ci.high == pytest.approx(0.549, abs=0.01)
    assert ci.contains(0.5) and not ci.contains(0.6)


def test_a_rarer_binomial_is_narrower():
    # 40 of 400: p = 0.1, half-width 1.96 * sqrt(0.09 / 400) = 0.0294
    x = np.array([1] * 40 + [0] * 360)
    ci = bootstrap.interval(mean_of(x), {"s": 400}, seed=2, resamples=4000)
    assert (ci.high - ci.low) / 2 == pytest.approx(0.0294, abs=0.006)


def test_paired_difference_of_zero_is_too_close_to_call():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 300)
    diff = bootstrap.paired_difference(mean_of(a), mean_of(a.copy()), {"s": 300})
    assert (diff.value, diff.low, diff.high) == (0.0, 0.0, 0.0)  # the same examples, every resample: exactly zero
    assert bootstrap.direction_verdict(diff, +1) == bootstrap.TOO_CLOSE
    assert bootstrap.equivalence_verdict(diff, 0.01) == bootstrap.REPRODUCED


def test_paired_difference_with_balanced_flips_straddles_zero():
    # b differs from a on 40 examples, 20 flipped up and 20 down: the mean difference is 0, the interval holds it
    a = np.array([1] * 150 + [0] * 150)
    b = a.copy()
    b[:20], b[150:170] = 0, 1
    diff = bootstrap.paired_difference(mean_of(a), mean_of(b), {"s": 300}, resamples=2000)
    assert diff.value == 0.0 and diff.low < 0 < diff.high
    assert bootstrap.direction_verdict(diff, -1) == bootstrap.TOO_CLOSE


def test_a_clear_lift_is_reproduced_or_contradicted_by_direction():
    a = np.array([1] * 100 + [0] * 200)
    b = np.array([1] * 200 + [0] * 100)
    diff = bootstrap.paired_difference(mean_of(a), mean_of(b), {"s": 300})
    assert diff.value == pytest.approx(1 / 3)
    assert bootstrap.direction_verdict(diff, +1) == bootstrap.REPRODUCED
    assert bootstrap.direction_verdict(diff, -1) == bootstrap.CONTRADICTED
    assert bootstrap.equivalence_verdict(diff, 0.05) == bootstrap.CONTRADICTED


def test_value_and_point_verdicts():
    ci = bootstrap.Interval(0.5, 0.45, 0.55, {"s": 400})
    assert bootstrap.value_verdict(ci, 0.52) == bootstrap.REPRODUCED
    assert bootstrap.value_verdict(ci, 0.60) == bootstrap.CONTRADICTED
    assert bootstrap.point_verdict(-30, -1, 0.1, 100) == bootstrap.REPRODUCED   # 30% faster, the claim: lower
    assert bootstrap.point_verdict(-5, -1, 0.1, 100) == bootstrap.TOO_CLOSE
    assert bootstrap.point_verdict(+30, -1, 0.1, 100) == bootstrap.CONTRADICTED


def test_an_interval_needs_examples():
    with pytest.raises(LabError, match="at least 2 examples"):
        bootstrap.interval(mean_of(np.array([1])), {"s": 1})


def test_macro_f1_matches_sklearn():
    from lib.evaluation import metrics
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 2, (200, 11)), rng.integers(0, 2, (200, 11))
    y[:, 4] = 0
    p[:, 4] = 0  # a class with no positives at all scores 0, as sklearn's zero_division=0
    assert evidence._macro_f1(y, p) == pytest.approx(metrics.macro_f1(y, p))


# ---------------------------------------------------------------- the registry

def test_every_study_has_claims_and_every_claim_is_well_formed():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    for study in claims.STUDIES:
        assert sum(c.study == study for c in claims.CLAIMS) >= 4, study
    runs = {p: {(nb, r) for nb, r, _ in profiles.RUNS[p] + profiles.OPTIONAL_RUNS.get(p, [])} for p in claims.PROFILES}
    for c in claims.CLAIMS:
        assert c.kind in ("direction", "equivalent", "value"), c.id
        assert c.metric in evidence.METRICS or c.metric in evidence.POINT_METRICS, c.id
        assert c.kind != "equivalent" or c.margin > 0, c.id
        assert (c.study_a is None) == (c.kind == "value") or c.id in ("em-ffnn-weights", "cdec-less-data"), c.id
        for profile, (a, b) in c.tests.items():
            for arm in (a, b):
                if arm is not None:
                    assert (arm[0], arm[1]) in runs[profile], (c.id, profile, arm)
            assert (a is None) == (c.kind == "value"), c.id


def test_the_cpu_profile_tests_the_issue_s_named_findings():
    cpu = {c.id for c in claims.CLAIMS if "cpu" in c.tests}
    assert {"em-ffnn-weights", "em-encoder-beats-ffnn", "em-decoder-beats-encoder", "cdec-f1",
            "mt-round-robin", "mt-cosine-sts", "mt-simcse", "mt-lora-close", "qa-lora-beats-prompt-f1"} <= cpu


# ---------------------------------------------------------------- the report's card

def _executed_notebook(path: Path) -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · A study\n## Data"),
                nbformat.v4.new_code_cell("# Set-up (generated)\nimport os"),
                nbformat.v4.new_code_cell("A = 1  # a parameter", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(A + 1)", outputs=[nbformat.v4.new_output("stream", text="2\n")]),
                nbformat.v4.new_markdown_cell("## Results")]
    nb.metadata["papermill"] = {"end_time": "2026-12-03T10:00:00.000000", "exception": None}
    nbformat.write(nb, path)
    return path


def test_report_opens_with_the_card_then_contents_with_code_folded(tmp_path):
    run = tmp_path / "99_study" / "some-run"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "profile": "cpu", "headline": {"val_macro_f1": 0.5}, "study": [{"model": "X", "val_macro_f1": 0.6}],
        "notes": ["validation macro-F1 0.500 beats chance (0.2)"], "caps": ["MAX_TRAIN_SAMPLES=10: 10 of 99"],
        "params": {"MODEL": "tiny-model"}, "wall_seconds": 12.0, "peak_rss_mb": 100,
        "stage_seconds": {"load": 3.0, "train": 6.0, "predict": 2.0, "other": 1.0},
        "metrics": {"n_train": 10, "baselines": {"chance": {"val_macro_f1": 0.2}}}}))
    report_html.render(_executed_notebook(run / "notebook.ipynb"), run / "report.html")
    page = (run / "report.html").read_text()
    body = page[page.index("<body"):]
    assert body.index("summary-card") < body.index("report-toc") < body.index("jp-Cell")
    for text in ("99_study/some-run", "tiny-model", "MAX_TRAIN_SAMPLES=10: 10 of 99", "0.600", "beats chance",
                 "train: 10", "12 s", "train 6 s (50%), load 3 s (25%), predict 2 s (17%), other 1 s (8%)"):
        assert text in page, text
    assert page.count("<details class=\"folded-cell\">") == 2   # the set-up and the parameters cell, whole
    assert page.count("<details class=\"code-input\">") == 1    # the other code cell's input only
    assert "cdnjs" not in page and "require.min.js" not in page
    assert "#Results" in page  # the contents link the notebook's headings
    report_html.set_claims(run / "report.html", "<ul><li id='claim-x'>x</li></ul>")
    report_html.set_claims(run / "report.html", "<ul><li id='claim-y'>y</li></ul>")
    page = (run / "report.html").read_text()
    assert "claim-y" in page and "claim-x" not in page  # replaced, not appended


def test_a_failed_run_s_card_says_so(tmp_path):
    run = tmp_path / "99_study" / ".r.tmp-123"
    run.mkdir(parents=True)
    report_html.render(_executed_notebook(run / "notebook.ipynb"), run / "report.html")
    page = (run / "report.html").read_text()
    assert "did not finish" in page and "99_study/r" in page


# ---------------------------------------------------------------- a scorecard from a synthetic 06 run

def _fake_06(out: Path) -> Path:
    run = out / "06_multitask" / "minilm-variants"
    P = SimpleNamespace(out=run)
    rng = np.random.default_rng(0)
    n = 400
    gold = rng.normal(2.5, 1.0, n)
    u, v, z = rng.random(n), rng.random(n), rng.normal(0, 1, n)  # shared: the variants differ only by their rates

    def variant(name, sst_rate, sts_noise):
        evidence.save(P, f"{name}_sst", correct=(u < sst_rate).astype(int))
        evidence.save(P, f"{name}_para", correct=(v < 0.8).astype(int))
        evidence.save(P, f"{name}_sts", pred=gold + sts_noise * z, gold=gold)

    for name, rate, noise in [("probe", 0.30, 2.0), ("baseline", 0.40, 0.8), ("round_robin", 0.55, 0.8),
                              ("cosine", 0.55, 2.0), ("simcse", 0.55, 0.5), ("simcse_lora_noffn", 0.55, 0.5)]:
        variant(name, rate, noise)
    (run / "run.json").write_text(json.dumps({"notebook": "06_multitask", "run": "minilm-variants", "profile": "cpu",
                                              "status": "ok", "elapsed_seconds": 1.0, "params": {}}))
    (run / "metrics.json").write_text(json.dumps({"metrics": {"variants": {
        "simcse": {"train_seconds": 100.0}, "simcse_lora_noffn": {"train_seconds": 70.0}}}}))
    (run / "report.html").write_text(f"<html><body>{report_html.CLAIMS_START}{report_html.CLAIMS_END}</body></html>")
    return run


def test_scorecard_judges_a_synthetic_run(tmp_path):
    run = _fake_06(tmp_path)
    res = {r.claim.id: r for r in scorecard.judge_all(tmp_path)}
    assert set(res) == {c.id for c in claims.CLAIMS}  # one row per claim on the profile that ran
    assert res["mt-round-robin"].verdict == bootstrap.REPRODUCED          # SST 0.40 -> 0.55, same STS
    assert res["mt-cosine-sts"].verdict == bootstrap.REPRODUCED           # STS noise 0.8 -> 2.0: r falls
    assert res["mt-simcse-sts"].verdict == bootstrap.REPRODUCED
    assert res["mt-finetune-beats-probe"].verdict == bootstrap.REPRODUCED
    assert res["mt-lora-time"].verdict == bootstrap.REPRODUCED            # 100 s -> 70 s
    assert res["mt-para-flat"].verdict in (bootstrap.REPRODUCED, bootstrap.TOO_CLOSE)
    assert res["mt-shared-layers"].verdict == bootstrap.NOT_RUN and "gpu" in res["mt-shared-layers"].detail
    assert res["mt-epochs"].verdict == bootstrap.NOT_RUN and "no profile runs it" in res["mt-epochs"].detail
    assert res["em-ffnn-weights"].verdict == bootstrap.NOT_RUN and "was not made" in res["em-ffnn-weights"].detail
    d = res["mt-round-robin"].diff
    assert d.low > 0 and math.isclose(d.value, res["mt-round-robin"].ours_b.value - res["mt-round-robin"].ours_a.value)

    page = scorecard.add_to_index(tmp_path, "<html><body><h1>results</h1><table id='runs'></table></body></html>")
    assert page.index("Reproduction scorecard") < page.index("id='runs'")  # the run table stays, below
    assert "06_multitask/minilm-variants/report.html#claim-mt-round-robin" in page
    assert "data:image/png;base64," in page
    report = (run / "report.html").read_text()
    assert "id='claim-mt-round-robin'" in report and "reproduced" in report


def test_align_pairs_examples_by_id_across_runs():
    y = np.eye(3, dtype=int)[[0, 1, 2, 0]]
    a = evidence.Arm(Path("a"), samples={"tweets": {"y": y, "pred": y}}, ids={"tweets": ["t1", "t2", "t3", "t4"]})
    # b scored t3, t1 and t9 (not in a), in its own order; its predictions are right on t1 only
    yb = np.eye(3, dtype=int)[[2, 0, 1]]
    b = evidence.Arm(Path("b"), samples={"tweets": {"y": yb, "pred": np.eye(3, dtype=int)[[1, 0, 1]]}},
                     ids={"tweets": ["t3", "t1", "t9"]})
    a2, b2 = evidence.align(a, b, "macro_f1")
    assert a2.sizes("macro_f1") == b2.sizes("macro_f1") == {"tweets": 2}
    assert (a2.samples["tweets"]["y"] == b2.samples["tweets"]["y"]).all()  # the same tweets, in the same order
    assert a2.value("macro_f1") == 2 / 3 and b2.value("macro_f1") == pytest.approx(1 / 3)
    with pytest.raises(LabError, match="no tweets in common"):
        evidence.align(a, evidence.Arm(Path("c"), samples=b.samples, ids={"tweets": ["x", "y", "z"]}), "macro_f1")
