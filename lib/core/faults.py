"""Failpoints for the fault-injection tier (tests/faults/): `LAB_FAULT=<name>` makes the process kill itself with
SIGKILL the first time it reaches `point(<name>)`, exactly as a `kill -9` or a power cut would at that moment. Unset
(always, outside the tests) a point costs one dictionary lookup. `LAB_FAULT=<name>@<n>` kills at the n-th arrival;
with `LAB_FAULT_RANK=<k>` only rank k of a run on several processes dies (torchrun's RANK)."""
from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def point(name: str) -> None:
    """Die here with SIGKILL when LAB_FAULT names this point (nothing is flushed, no handler runs)."""
    want = os.environ.get("LAB_FAULT")
    if not want:
        return
    target, _, nth = want.partition("@")
    if target != name or os.environ.get("LAB_FAULT_RANK", os.environ.get("RANK", "0")) != os.environ.get("RANK", "0"):
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
