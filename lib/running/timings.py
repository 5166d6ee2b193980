"""How long runs take, for run_all's progress lines ("about 40 min left") and each run's time limit.

Two sources, this machine's first:
- outputs/timings.json: {profile: {"notebook/run": seconds}} of the last finished runs here;
- reference_timings.json (shipped beside this file): one full run per profile on the reference machine, so a first
  run knows its time from the start. Rescaled by this machine's speed: the ratio of what the runs measured here took
  to what they took on the reference machine (1 until a run has finished here), updated as runs finish.

    python -m lib.running.timings --write-reference --profile cpu --outputs DIR   # after a full run into DIR
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from lib.core import paths
from lib.reporting import runs

TIMINGS = "timings.json"  # outputs/timings.json: {profile: {"notebook/run": seconds}} of the last finished runs
REFERENCE = Path(__file__).with_name("reference_timings.json")  # {"machine", "measured", "profiles": {profile: {...}}}
TIME_LIMIT_FACTOR = 3.0  # a run may take this many times its expected time (a cold model cache, a slow day)
MIN_TIME_LIMIT = 600.0  # seconds: the least limit a run with an expected time gets (short runs vary most)
UNMEASURED_LIMIT = {"smoke": 1800.0, "cpu": 3 * 3600.0, "gpu": 12 * 3600.0}  # seconds, runs with no expected time
TIME_LIMIT_ENV = "LAB_RUN_TIME_LIMIT"  # seconds for every run (0: none); --time-limit wins


def load_timings(out: Path = paths.OUTPUTS) -> dict:
    """outputs/timings.json, or {} when there is none; a damaged one is reported (named) and ignored."""
    try:
        return runs.read_json(out / TIMINGS)
    except OSError:
        return {}
    except runs.DamagedFile as e:
        print(f"warning: {e}; the expected times start afresh", file=sys.stderr, flush=True)
        return {}


def record_timing(profile: str, key: str, seconds: float, out: Path = paths.OUTPUTS) -> dict:
    """Add one finished run's seconds to outputs/timings.json (atomically); returns the updated timings."""
    t = load_timings(out)
    t.setdefault(profile, {})[key] = round(seconds, 1)
    out.mkdir(parents=True, exist_ok=True)
    runs.atomic_write(out / TIMINGS, json.dumps(t, indent=1, sort_keys=True))
    return t


def load_reference(path: Path = REFERENCE) -> dict:
    """{profile: {"notebook/run": seconds}} of the shipped reference run ({} when the file is missing or damaged)."""
    try:
        return runs.read_json(path).get("profiles", {})
    except OSError:
        return {}
    except runs.DamagedFile as e:
        print(f"warning: {e}; no reference timings", file=sys.stderr, flush=True)
        return {}


def speed(profile: str, timings: dict, reference: dict) -> tuple[float, int]:
    """(this machine's time / the reference machine's, over the runs measured on both; the number of such runs).
    (1.0, 0) when no run has been measured on both."""
    here, ref = timings.get(profile, {}), reference.get(profile, {})
    both = [k for k in here if ref.get(k)]
    if not both:
        return 1.0, 0
    return sum(here[k] for k in both) / sum(ref[k] for k in both), len(both)


def expected(profile: str, key: str, timings: dict, reference: dict) -> float | None:
    """Seconds run `key` should take here: its last time on this machine, else its reference time x this machine's
    speed, else None. A run on N processes (key "NB/RUN xN") not yet timed so is estimated by its 1-process time."""
    for k in dict.fromkeys([key, key.split(" x")[0]]):
        if timings.get(profile, {}).get(k):
            return timings[profile][k]
        ref = reference.get(profile, {}).get(k)
        if ref:
            return ref * speed(profile, timings, reference)[0]
    return None


def expected_left(profile: str, keys: list[str], timings: dict, reference: dict | None = None) -> str:
    """'about 12 min left' for `keys` (the runs still to do, this one included), saying where the estimate comes
    from when it leans on the reference machine."""
    reference = {} if reference is None else reference
    times = [expected(profile, k, timings, reference) for k in keys]
    have = [t for t in times if t is not None]
    if not have:
        return "time left unknown: no earlier run measured"
    text = f"about {_minutes(sum(have))} left"
    if any(not timings.get(profile, {}).get(k) and t is not None for k, t in zip(keys, times)):
        factor, n = speed(profile, timings, reference)
        text += (f"; reference timings x {factor:.2f}, this machine's speed from {n} finished run(s)" if n else
                 "; reference timings, not yet rescaled to this machine")
    missing = len(keys) - len(have)
    return text + (f" + {missing} run(s) never measured" if missing else "")


def time_limit(profile: str, key: str, timings: dict, override: float | None = None,
               reference: dict | None = None) -> float | None:
    """Seconds run `key` may take before its kernel is stopped (None: no limit): `override` (--time-limit), else
    $LAB_RUN_TIME_LIMIT, else TIME_LIMIT_FACTOR x its expected time (at least MIN_TIME_LIMIT), else the
    profile's UNMEASURED_LIMIT. 0 means no limit."""
    if override is None and os.environ.get(TIME_LIMIT_ENV):
        try:
            override = float(os.environ[TIME_LIMIT_ENV])
        except ValueError:
            raise SystemExit(f"{TIME_LIMIT_ENV}={os.environ[TIME_LIMIT_ENV]!r}: expected seconds (a number; 0: no "
                             "limit)") from None
    if override is not None:
        return override or None
    seconds = expected(profile, key, timings, {} if reference is None else reference)
    if seconds:
        return max(TIME_LIMIT_FACTOR * seconds, MIN_TIME_LIMIT)
    return UNMEASURED_LIMIT.get(profile)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def write_reference(profile: str, out: Path, path: Path = REFERENCE) -> dict:
    """Replace `profile`'s reference timings with the full run in `out` (its timings.json), naming the machine."""
    measured = load_timings(out).get(profile)
    if not measured:
        raise SystemExit(f"{out / TIMINGS}: no {profile} timings; run ./run_all.sh --profile {profile} first")
    try:
        ref = runs.read_json(path)
    except OSError:
        ref = {}
    ref.setdefault("profiles", {})[profile] = measured
    ref.setdefault("measured", {})[profile] = {"date": time.strftime("%Y-%m-%d"), "machine": _machine(),
                                               "total_minutes": round(sum(measured.values()) / 60, 1)}
    runs.atomic_write(path, json.dumps(ref, indent=1, sort_keys=True) + "\n")
    return ref


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"{os.cpu_count()} cores, {model or platform.machine()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="The lab's reference timings (lib/running/reference_timings.json).")
    ap.add_argument("--write-reference", action="store_true", help="replace the profile's reference timings")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--outputs", type=Path, default=paths.OUTPUTS, help="the finished full run's outputs folder")
    a = ap.parse_args(argv)
    if a.write_reference:
        write_reference(a.profile, a.outputs)
    ref = load_reference().get(a.profile, {})
    for k, v in sorted(ref.items()):
        print(f"{k}  {v / 60:.1f} min")
    print(f"total  {sum(ref.values()) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
