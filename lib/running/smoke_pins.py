"""The regression tier: the smoke profile is deterministic on CPU, so each smoke run's headline metrics are pinned.

    python -m lib.running.smoke_pins check  OUTPUTS    # compare OUTPUTS/<notebook>/<run>/metrics.json with the pinned values
    python -m lib.running.smoke_pins update OUTPUTS    # re-pin (after a deliberate change; the diff shows in review)

OUTPUTS is a folder written by `./run_all.sh --profile smoke` (e.g. LAB_OUTPUTS=/tmp/smoke ./run_all.sh --profile
smoke). The pinned values live in tests/expected_smoke_metrics.json; tests/test_smoke_run_all.py checks them after
its smoke run. A value passes when |actual - expected| <= ABS_TOL + REL_TOL * |expected|.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from lib.core import paths

EXPECTED = paths.ROOT / "tests" / "expected_smoke_metrics.json"
ABS_TOL = 0.01   # absolute slack: scores on a 0-1 scale may move by a hundredth (thread scheduling, BLAS order)
REL_TOL = 0.02   # plus 2 % of the value: scores on a 0-100 scale (QA EM/F1, CoNLL) get ~1-2 points
VOLATILE = ("seconds", "minutes", "time", "rss", "memory", "per_s")  # headline keys that measure speed, not quality


def collect(outputs: Path) -> dict:
    """{"notebook/run": {headline key: value}} of every smoke run under `outputs` (run folders only: not a failed
    attempt kept beside a good result, nor a runner's temporary folder; see lib.reporting.runs)."""
    from lib.reporting import runs
    found = {}
    for m in sorted(Path(outputs).glob("*/*/metrics.json")):
        if m.parent.name.startswith(".") or m.parent.name.endswith(runs.FAILED):
            continue
        data = json.loads(m.read_text())
        if data.get("profile") != "smoke":
            continue
        found[f"{m.parent.parent.name}/{m.parent.name}"] = {
            k: v for k, v in data.get("headline", {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not any(s in k for s in VOLATILE)}
    return found


def compare(actual: dict, expected: dict, abs_tol: float = ABS_TOL, rel_tol: float = REL_TOL) -> list[str]:
    """Human-readable differences; empty when everything pinned matches within abs_tol + rel_tol * |pinned|."""
    problems = []
    for run, exp in expected.items():
        if run not in actual:
            problems.append(f"{run}: pinned but not produced by this smoke run")
            continue
        for k, want in exp.items():
            got = actual[run].get(k)
            if got is None:
                problems.append(f"{run}: {k} pinned at {want} but missing from metrics.json")
            elif not (math.isfinite(got) and abs(got - want) <= abs_tol + rel_tol * abs(want)):
                problems.append(f"{run}: {k} = {got:.4f}, pinned {want:.4f} "
                                f"(tolerance ±{abs_tol + rel_tol * abs(want):.4f})")
    for run in sorted(set(actual) - set(expected)):
        problems.append(f"{run}: produced but not pinned")
    if problems:
        problems.append("if the change is deliberate: python -m lib.running.smoke_pins update <smoke outputs> and commit "
                        "tests/expected_smoke_metrics.json")
    return problems


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("check", "update"):
        print(__doc__, file=sys.stderr)
        return 2
    actual = collect(Path(argv[1]))
    if not actual:
        print(f"no smoke-profile metrics.json under {argv[1]}", file=sys.stderr)
        return 1
    if argv[0] == "update":
        EXPECTED.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
        print(f"pinned {sum(map(len, actual.values()))} values of {len(actual)} runs in {EXPECTED}")
        return 0
    problems = compare(actual, json.loads(EXPECTED.read_text()))
    print("\n".join(problems) or f"all {sum(map(len, actual.values()))} pinned values match")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
