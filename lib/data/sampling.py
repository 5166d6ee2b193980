"""The one subsampling rule behind every MAX_*_SAMPLES / MAX_*_PAIRS knob."""
from __future__ import annotations

import random


def cap(rows, n: int, name: str, seed: int = 0, what: str = "rows", caps: list | None = None):
    """The one subsampling rule of the lab's MAX_*_SAMPLES / MAX_*_PAIRS knobs: at most `n` rows (0: all), a seeded
    random subset that keeps the original order. Asking for more rows than exist keeps them all (never an error).
    Every cap that applied is appended as a sentence to `caps` (the run's list: lib.reporting.report.finish writes
    them into metrics.json and the report). `rows`: a DataFrame (pandas' seeded sample) or a list."""
    total = len(rows)
    if not n or n >= total:
        if n:
            _note(caps, f"{name}={n}: all {total} {what} kept (fewer than the cap)")
        return rows
    if hasattr(rows, "sample"):
        out = rows.sample(n=n, random_state=seed).sort_index()
    else:
        keep = sorted(random.Random(seed).sample(range(total), n))
        out = [rows[i] for i in keep]
    _note(caps, f"{name}={n}: {n} of {total} {what}")
    return out


def _note(caps: list | None, text: str) -> None:
    if caps is not None and text not in caps:
        caps.append(text)
