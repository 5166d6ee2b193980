"""A run's folder, written as a transaction: one process per run folder (`run_lock`), a finished attempt swapped in
whole (`place`: a good one replaces the last result, a failed one lands beside it in <run>.failed), and the leftovers
of a runner that died mid-run cleaned up on the next start (`sweep`). Layout: lib.reporting.runs."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from pathlib import Path

from lib.core import paths
from lib.reporting import runs


class RunInProgress(Exception):
    pass


@contextlib.contextmanager
def run_lock(final: Path):
    """One process per run folder: a second run_all.sh (or test) asking for the same run gets a clear message."""
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = final.parent / f".{final.name}.lock"
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise RunInProgress(f"{final} is being written by another run (pid {f.read().strip() or '?'}); wait for "
                                "it or use another LAB_OUTPUTS") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def checkpoints_dir(final: Path) -> Path:
    """Where a run's trainings checkpoint (`<run>.checkpoints` beside the run folder): it outlives a killed attempt,
    so the next attempt resumes from it; removed once the run finishes."""
    return final.parent / f"{final.name}.checkpoints"


def is_good(run_dir: Path) -> bool:
    try:
        return runs.read_json(run_dir / runs.RUN_JSON).get("status") == "ok"
    except (OSError, runs.DamagedFile, AttributeError):
        return False


def _swap(src: Path, dest: Path) -> None:
    """Move folder `src` to `dest`, replacing it; a crash in between leaves `.<name>.old-PID`, which sweep_run
    puts back."""
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    src.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def place(attempt: Path, final: Path, ok: bool) -> Path:
    """Put a finished attempt where it belongs: a good one replaces `final` (and drops an older failed attempt); a
    failed one goes to <run>.failed beside a good `final`, or to `final` itself when there is no good result to
    keep. Returns where it went."""
    failed = runs.failed_dir(final)
    if ok:
        _swap(attempt, final)
        shutil.rmtree(failed, ignore_errors=True)
        return final
    dest = failed if is_good(final) else final
    _swap(attempt, dest)
    if dest == final:
        shutil.rmtree(failed, ignore_errors=True)
    return dest


_LEFTOVER = re.compile(r"^\.(?P<run>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")


def sweep_run(final: Path) -> list[str]:
    """Clean up after runners that died (kill -9, power loss) while writing `final` (call it holding the run's
    lock, so no live process writes these): a `.<run>.old-PID` whose swap did not finish becomes `final` again when
    `final` is gone, else is removed; a `.<run>.tmp-PID` attempt is kept as an interrupted attempt (lib.reporting.runs layout)
    with a run.json saying so. Returns what was done, one line each."""
    done = []
    for d in sorted(final.parent.glob(f".{final.name}.*-*")):
        m = _LEFTOVER.match(d.name)
        if not m or m["run"] != final.name or not d.is_dir() or int(m["pid"]) == os.getpid():
            continue
        if m["kind"] == "old":
            if not final.exists():
                d.rename(final)
                done.append(f"{final}: restored from {d.name} (a swap was interrupted)")
            else:
                shutil.rmtree(d, ignore_errors=True)
                done.append(f"{d}: removed (left by process {m['pid']})")
            continue
        rec = {"notebook": final.parent.name, "run": final.name, "status": "interrupted",
               "error": f"the runner (process {m['pid']}) stopped before this run finished (killed?)",
               "elapsed_seconds": 0.0, "profile": "?", "params": {}}
        (d / runs.RUN_JSON).write_text(json.dumps(rec, indent=2))
        where = place(d, final, ok=False)
        done.append(f"{d}: an interrupted attempt (process {m['pid']}), kept as {where.name}")
    return done


def sweep(out: Path = paths.OUTPUTS) -> list[str]:
    """sweep_run over every run folder of `out` that no live process holds."""
    done = []
    names = {(d.parent, m["run"]) for d in out.glob("*/.*-*") if (m := _LEFTOVER.match(d.name))}
    for parent, run in sorted(names):
        try:
            with run_lock(parent / run):
                done += sweep_run(parent / run)
        except RunInProgress:
            continue
    return done
