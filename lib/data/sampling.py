"""The one subsampling rule behind every MAX_*_SAMPLES / MAX_*_PAIRS knob."""
from __future__ import annotations

import random


def cap(rows, n: int, name: str, seed: int = 0, what: str = "rows", caps: list | None = None):
    """The one subsampling rule of the lab's MAX_*_SAMPLES / MAX_*_PAIRS knobs: at most `n` rows (0: all), a seeded
    random subset that keeps the original order. Asking for more rows than exist keeps them all (never an error).
    Every cap that applied is appended as a sentence to `caps` (the run's list: lib.reporting.report.finish writes
    them into metrics.json and the report). `rows`: a DataFrame (pandas' seeded sample) or a list."""
    total = len(rows)
    record(caps, name, n, total, what)
    if not n or n >= total:
        return rows
    if hasattr(rows, "sample"):
        return rows.sample(n=n, random_state=seed).sort_index()
    keep = sorted(random.Random(seed).sample(range(total), n))
    return [rows[i] for i in keep]


def record(caps: list | None, name: str, n: int, total: int, what: str = "rows") -> None:
    """Append to `caps` the sentence saying what cap `name`=n did to `total` rows (nothing when n is 0: no cap)."""
    if caps is None or not n:
        return
    text = f"{name}={n}: " + (f"all {total} {what} kept (fewer than the cap)" if n >= total else f"{n} of {total} {what}")
    if text not in caps:
        caps.append(text)
