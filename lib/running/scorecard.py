"""The reproduction scorecard: every claim of lib.running.claims judged on the runs in outputs/ (per profile that ran),
drawn per study against the study's numbers, and put at the top of outputs/index.html above the run table; each
claim's evidence also goes into the card of the reports it comes from (anchor #claim-<id>).
"""
from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from lib.core import paths
from lib.core.errors import LabError
from lib.evaluation import bootstrap
from lib.running import claims, report_html
from lib.studies import evidence


@dataclass
class Result:
    claim: claims.Claim
    profile: str
    verdict: str
    detail: str                      # the evidence in words
    ours_a: bootstrap.Interval | None = None
    ours_b: bootstrap.Interval | None = None
    diff: bootstrap.Interval | None = None
    runs: list = field(default_factory=list)   # run folders (relative to outputs) holding the evidence

    @property
    def anchor(self) -> str:
        return f"claim-{self.claim.id}"


def profiles_run(out: Path) -> list[str]:
    """The profiles of the runs in `out`, in claims.PROFILES order."""
    found = set()
    for rj in out.glob("*/*/run.json"):
        try:
            found.add(json.loads(rj.read_text()).get("profile"))
        except (OSError, ValueError):
            continue
    return [p for p in claims.PROFILES if p in found]


def _not_run(c: claims.Claim, profile: str, why: str = "") -> Result:
    """`why` empty: the profile does not test the claim (the profiles that do are named); else what is missing."""
    testing = claims.profiles_testing(c)
    if why:
        return Result(c, profile, bootstrap.NOT_RUN, f"{why}; profiles that test it: {' / '.join(testing)}")
    where = (f"the {' / '.join(testing)} profile{'s' if len(testing) > 1 else ''} run{'' if len(testing) > 1 else 's'} it"
             if testing else "no profile runs it")
    return Result(c, profile, bootstrap.NOT_RUN, f"not run on {profile}; {where}")


def _run_ok(out: Path, nb: str, run: str, profile: str) -> str:
    """'' when outputs/nb/run finished on `profile`, else why not."""
    try:
        rec = json.loads((out / nb / run / "run.json").read_text())
    except (OSError, ValueError):
        return f"{nb}/{run} was not made (./run_all.sh --profile {profile} --only {nb}/{run})"
    if rec.get("profile") != profile:
        return f"{nb}/{run} ran on profile {rec.get('profile')}, not {profile}"
    if rec.get("status") not in ("ok", "cached"):
        return f"{nb}/{run} failed"
    return ""


def _data_dir(out: Path, nb: str, run: str) -> str:
    try:
        return json.loads((out / nb / run / "run.json").read_text()).get("params", {}).get("DATA_DIR", "")
    except (OSError, ValueError):
        return ""


def _seed_spread(run_dir: Path) -> str:
    """The single models of a seed ensemble (02's SEEDS), from metrics.json: their hold-out macro-F1."""
    try:
        members = json.loads((run_dir / "metrics.json").read_text())["metrics"].get("ensemble_members") or []
    except (OSError, ValueError, KeyError):
        return ""
    vals = [m["holdout_macro_f1"] for m in members if isinstance(m, dict) and "holdout_macro_f1" in m]
    return (f"; seed spread: {len(vals)} seeds alone {', '.join(f'{v:.3f}' for v in vals)} "
            f"(range {max(vals) - min(vals):.3f})") if len(vals) > 1 else ""


def judge(c: claims.Claim, profile: str, out: Path = paths.OUTPUTS) -> Result:
    if profile not in c.tests:
        return _not_run(c, profile)
    arm_a, arm_b = c.tests[profile]
    for arm in (arm_a, arm_b):
        if arm is not None and (why := _run_ok(out, arm[0], arm[1], profile)):
            return _not_run(c, profile, why)
    try:
        b = evidence.read_arm(out / arm_b[0] / arm_b[1], arm_b[2], _data_dir(out, *arm_b[:2]))
        a = evidence.read_arm(out / arm_a[0] / arm_a[1], arm_a[2], _data_dir(out, *arm_a[:2])) if arm_a else None
        return _evaluate(c, profile, a, b, out)
    except (LabError, KeyError, OSError, ValueError, IndexError) as e:  # unreadable evidence: said in its row
        return _not_run(c, profile, f"no evidence on {profile}: {type(e).__name__}: {e}")


def _label(arm: evidence.Arm, out: Path) -> str:
    rel = arm.run_dir.relative_to(out)
    return f"{rel}{' ' + arm.part if arm.part else ''}"


def _evaluate(c, profile, a, b, out) -> Result:
    runs = sorted({str(x.run_dir.relative_to(out)) for x in (a, b) if x is not None})
    if c.metric in evidence.POINT_METRICS:
        va, vb = a.value(c.metric), b.value(c.metric)
        verdict = bootstrap.point_verdict(vb - va, c.direction, 0.1, va)
        detail = (f"{_label(a, out)} {va:.0f} s -> {_label(b, out)} {vb:.0f} s ({(vb - va) / va:+.0%}; one timing "
                  f"each, no interval); the study: {c.study_text()}")
        return Result(c, profile, verdict, detail, runs=runs)
    if c.kind == "value":
        ci = bootstrap.interval(b.statistic(c.metric), b.sizes(c.metric))
        return Result(c, profile, bootstrap.value_verdict(ci, c.study_b),
                      f"{_label(b, out)}: {c.metric} {ci.text()} (95% bootstrap CI over {b.source}) vs the study's "
                      f"{c.study_b:g}" + _seed_spread(b.run_dir), ours_b=ci, runs=runs)
    a, b = evidence.align(a, b, c.metric)
    sizes = b.sizes(c.metric)
    ci_a = bootstrap.interval(a.statistic(c.metric), sizes)
    ci_b = bootstrap.interval(b.statistic(c.metric), sizes)
    diff = bootstrap.paired_difference(a.statistic(c.metric), b.statistic(c.metric), sizes)
    verdict = (bootstrap.direction_verdict(diff, c.direction) if c.kind == "direction"
               else bootstrap.equivalence_verdict(diff, c.margin))
    want = {"direction": "higher" if c.direction > 0 else "lower", "equivalent": f"within ±{c.margin:g}"}[c.kind]
    detail = (f"{_label(a, out)} {ci_a.text()} -> {_label(b, out)} {ci_b.text()}; difference {diff.text()} "
              f"(paired bootstrap, 95%, over {b.source}); the claim: b {want}; the study: {c.study_text()}"
              + _seed_spread(b.run_dir) + _seed_spread(a.run_dir))
    return Result(c, profile, verdict, detail, ci_a, ci_b, diff, runs)


def judge_all(out: Path = paths.OUTPUTS) -> list[Result]:
    return [judge(c, p, out) for p in profiles_run(out) for c in claims.CLAIMS]


# ---------------------------------------------------------------- pictures and pages

def study_figure(results: list[Result], study: str) -> str:
    """One PNG (base64) per study: per claim, the study's two numbers (grey) and ours with 95% intervals (colour)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in results if r.claim.study == study and r.claim.metric not in evidence.POINT_METRICS
            and r.ours_b is not None]  # the claims this profile tested
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(rows) + 1.1))
    for i, r in enumerate(rows):
        c, y = r.claim, len(rows) - 1 - i
        xs = [v for v in (c.study_a, c.study_b) if v is not None]
        ax.plot(xs, [y + 0.15] * len(xs), color="0.6", lw=1)
        if c.study_a is not None:
            ax.plot(c.study_a, y + 0.15, "o", mfc="white", mec="0.45", label="study: a")
        ax.plot(c.study_b, y + 0.15, "o", color="0.45", label="study: b")
        for ci, col, lab in ((r.ours_a, "tab:blue", "ours: a (95% CI)"), (r.ours_b, "tab:orange", "ours: b (95% CI)")):
            if ci is not None:
                ax.errorbar(ci.value, y - 0.15, xerr=[[ci.value - ci.low], [ci.high - ci.value]], fmt="s", color=col,
                            capsize=3, label=lab)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r.claim.id} ({r.verdict})" for r in reversed(rows)], fontsize=8)
    ax.set_xlabel(claims.STUDIES[study][2])
    ax.set_title(claims.STUDIES[study][1], fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="best")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


_VERDICT_CLASS = {bootstrap.REPRODUCED: "verdict-reproduced", bootstrap.CONTRADICTED: "verdict-contradicted",
                  bootstrap.TOO_CLOSE: "verdict-too", bootstrap.NOT_RUN: "verdict-not"}


def _link(r: Result) -> str:
    if not r.runs:
        return ""
    return " · ".join(f"<a href='{html.escape(run)}/report.html#{r.anchor}'>{html.escape(run)}</a>" for run in r.runs)


def scorecard_html(results: list[Result]) -> str:
    if not results:
        return "<h2>Reproduction scorecard</h2><p>No runs yet: nothing to judge.</p>"
    parts = ["<section id='scorecard'><h2>Reproduction scorecard</h2><p>Every quantitative claim of the five study "
             "reports (<code>lib/running/claims.py</code>), judged on this folder's runs: 95% bootstrap intervals over the "
             "evaluated examples, a paired bootstrap for differences. Verdicts: reproduced, contradicted, too close to "
             "call (the interval straddles the line), not run (with the profile that runs it).</p>"]
    for profile in dict.fromkeys(r.profile for r in results):
        rs = [r for r in results if r.profile == profile]
        counts = {v: sum(r.verdict == v for r in rs) for v in _VERDICT_CLASS}
        parts.append(f"<h3>Profile {html.escape(profile)}: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "</h3>")
        for study, (file, title, _) in claims.STUDIES.items():
            sr = [r for r in rs if r.claim.study == study]
            parts.append(f"<h4>{html.escape(title)} <span class='study'>({file})</span></h4>")
            if any(r.ours_b for r in sr):
                parts.append(f"<img class='scorecard-fig' alt='{html.escape(title)}: the study against this run' "
                             f"src='data:image/png;base64,{study_figure(sr, study)}'>")
            parts.append("<table class='scorecard'><tr><th>claim</th><th>the study</th><th>verdict</th>"
                         "<th>evidence</th><th>report</th></tr>")
            for r in sr:
                parts.append(f"<tr id='{profile}-{r.anchor}'><td><b>{html.escape(r.claim.id)}</b>: "
                             f"{html.escape(r.claim.text)}</td><td>{html.escape(r.claim.study_text())}</td>"
                             f"<td class='{_VERDICT_CLASS[r.verdict]}'>{html.escape(r.verdict)}</td>"
                             f"<td class='study'>{html.escape(r.detail)}"
                             f"{'<br>' + html.escape(r.claim.note) if r.claim.note else ''}</td><td>{_link(r)}</td></tr>")
            parts.append("</table>")
    parts.append("</section>")
    return "".join(parts)


CSS = ("<style>.scorecard-fig{height:auto;max-width:820px;border:none}.verdict-reproduced{color:#17702b;"
       "font-weight:600}.verdict-contradicted{color:#b3261e;font-weight:600}.verdict-too{color:#8a6d00;font-weight:600}"
       ".verdict-not{color:#666}table.scorecard{margin-bottom:8px}</style>")


def report_section(results: list[Result], run: str) -> str:
    """The claims block of one report's card: the claims whose evidence comes from `run`."""
    rs = [r for r in results if run in r.runs]
    if not rs:
        return "<h3>Claims tested</h3><p>None of the studies' claims reads this run.</p>"
    items = "".join(f"<li id='{r.anchor}'><b>{html.escape(r.claim.id)}</b>: {html.escape(r.claim.text)} — "
                    f"<span class='{_VERDICT_CLASS[r.verdict]}'>{html.escape(r.verdict)}</span>: "
                    f"{html.escape(r.detail)}</li>" for r in rs)
    return f"<h3>Claims tested (the studies' findings, lib/running/claims.py)</h3><ul>{items}</ul>"


def add_to_index(out: Path, page: str) -> str:
    """Judge every claim, put the evidence into the reports, and return the index page with the scorecard after its
    first heading."""
    results = judge_all(out)
    for report in out.glob("*/*/report.html"):
        run = str(report.parent.relative_to(out))
        report_html.set_claims(report, report_section(results, run))
    block = CSS + scorecard_html(results)
    head, sep, rest = page.partition("</h1>")
    return head + sep + block + rest if sep else block + page
