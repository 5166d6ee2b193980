"""Where a run's minutes go: wall seconds per stage (load, train, predict), summed over the process.

The library marks its stages where they happen (model and data loading, the training loop, every prediction), so
no notebook needs timing code; `lib.reporting.report.finish` writes the totals into metrics.json and the report's
summary card shows them. Stages nest: a stage opened inside another counts only toward itself, so the evaluations
`fit` runs between its epochs are predict time, not train time, and a model loaded inside a prediction is load time.
"""
from __future__ import annotations

import functools
import threading
import time
from contextlib import contextmanager

STAGES = ("load", "train", "predict")  # what a report names; the rest of the wall time is "other" (set-up, reporting)

_lock = threading.Lock()
_seconds: dict[str, float] = {}
_open: list[list] = []  # the stages now open, innermost last: [name, start, seconds spent in inner stages]


@contextmanager
def stage(name: str):
    """Count the wall time of the block toward stage `name` (minus the time of stages opened inside it)."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}: expected one of {', '.join(STAGES)}")
    frame = [name, time.perf_counter(), 0.0]
    _open.append(frame)
    try:
        yield
    finally:
        elapsed = time.perf_counter() - frame[1]
        with _lock:
            _open.remove(frame)
            _seconds[name] = _seconds.get(name, 0.0) + elapsed - frame[2]
            if _open:
                _open[-1][2] += elapsed


def timed(name: str):
    """Decorator: every call of the function is stage `name`."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with stage(name):
                return fn(*args, **kwargs)
        return inner
    return wrap


def seconds(wall: float | None = None) -> dict:
    """{stage: seconds} so far, each stage listed (0.0 when it never ran); with `wall` (the run's wall seconds) also
    "other": the wall time no stage claimed."""
    with _lock:
        out = {s: round(_seconds.get(s, 0.0), 3) for s in STAGES}
    if wall is not None:
        out["other"] = round(max(wall - sum(out.values()), 0.0), 3)
    return out


def reset() -> None:
    """Forget the totals (tests; a notebook's kernel starts with none)."""
    with _lock:
        _seconds.clear()
