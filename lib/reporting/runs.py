"""Run folders as run_all.sh leaves them, for the runner and for every notebook that reads another run.

outputs/<notebook>/<run>/         the last good result (run.json status "ok"); or, while the run never succeeded, its
                                  latest attempt (status "failed")
outputs/<notebook>/<run>.failed/  the latest failed or interrupted attempt made after that good result
outputs/<notebook>/.<run>.tmp-PID, .<run>.old-PID   a run being written / swapped by process PID (lib.running.runner)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from lib.core.errors import LabError

FAILED = ".failed"  # suffix of the folder holding a failed attempt beside the last good result
RUN_JSON = "run.json"


class DamagedFile(LabError):
    pass


def read_json(path: Path):
    """The parsed JSON file; DamagedFile naming the file, line and column when it does not parse (a truncated
    write, a disk that filled up), OSError when it cannot be read."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError as e:
        line, col = getattr(e, "lineno", "?"), getattr(e, "colno", "?")
        raise DamagedFile(f"{path}:{line}:{col}: damaged JSON ({getattr(e, 'msg', e)}; {len(text)} characters): "
                          f"expected a complete JSON document") from None


def atomic_write(path: Path, text: str) -> None:
    """Write a whole file or nothing: a killed process leaves the old file, never half a new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def failed_dir(final: Path) -> Path:
    return final.with_name(final.name + FAILED)


def rerun_command(run_dir: Path) -> str:
    return f"./run_all.sh --only {run_dir.parent.name}/{run_dir.name.removesuffix(FAILED)}"


def require_finished(run_dir: Path | str, needs: str | None = "metrics.json") -> None:
    """Stop with a LabError, naming the run and the command that re-runs it, unless `run_dir` holds a finished good
    run: run.json (when run_all.sh made it) with status "ok" and `needs` present (None: the caller checks its files).
    A hand-made run (papermill, no run.json) counts as finished when `needs` is there."""
    d = Path(run_dir)
    name, again = f"{d.parent.name}/{d.name}", rerun_command(d)
    if not d.is_dir():
        tried = failed_dir(d)
        why = f"its last attempt failed (see {tried / 'report.html'})" if tried.is_dir() else "it was never run"
        raise LabError(f"run {name} ({d}) is not there: {why}; make it with: {again}")
    if (d / RUN_JSON).is_file():
        try:
            rec = read_json(d / RUN_JSON)
        except DamagedFile as e:
            raise LabError(f"run {name}: {e}; re-run it: {again}") from None
        if rec.get("status") != "ok":
            raise LabError(f"run {name} ({d}) {rec.get('status', 'has no status')}: {rec.get('error') or 'no error'}"
                           f"; refusing to read a failed run; re-run it: {again}")
    if needs and not (d / needs).is_file():
        raise LabError(f"run {name} ({d}) is incomplete: {needs} is missing (interrupted?); re-run it: {again}")
