"""What every run leaves behind: figures as PNG, tables, and metrics.json (headline metrics, resolved
parameters, wall time, peak memory, library versions, git commit)."""
from __future__ import annotations

import json
import math
import platform
import resource
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from lib.core import distributed, faults, paths, precision, stages

PACKAGES = ["torch", "transformers", "peft", "bitsandbytes", "datasets", "scikit-learn", "numpy", "pandas",
            "iterative-stratification", "papermill", "gguf"]


@dataclass(frozen=True)
class RunFacts:
    """What a run's record says about the run itself (the notebook's parameters give it: P.facts())."""
    out: Path            # the run's folder
    notebook: str        # e.g. "02_encoders"
    profile: str         # smoke | cpu | gpu
    params: dict         # the resolved parameters
    started: float       # time.time() when the run's set-up began
    caps: tuple = ()     # the sentences of every sample cap that applied


def save_figure(fig, out: Path, name: str):
    """Save as <out>/figures/<name>.png and return the figure so the notebook shows it."""
    d = Path(out) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    fig.savefig(d / f"{name}.png", dpi=110, bbox_inches="tight")
    return fig


def save_table(df: pd.DataFrame, out: Path, name: str) -> pd.DataFrame:
    df.to_csv(Path(out) / f"{name}.csv")
    return df


def peak_memory_mb() -> dict:
    """Peak resident memory of this process (and peak CUDA allocation when a GPU is used)."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        import torch
        if torch.cuda.is_available():
            out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    return out


def versions() -> dict:
    v = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            v[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return v


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib", "notebooks"], cwd=paths.ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "") if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _clean(x):
    """JSON-safe: numpy scalars to Python, NaN/inf to None, Paths to str."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 0) == 0:
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def finish(run: RunFacts, headline: dict, metrics: dict | None = None, study: list | None = None, notes: list | None = None) -> dict:
    """Write <out>/metrics.json. `headline`: the few numbers the index shows; `metrics`: everything else;
    `study`: the study's reported rows for comparison; `notes`: honest caveats shown in the index."""
    caps = list(run.caps)
    if caps:
        print("Data caps applied in this run: " + "; ".join(caps))
    wall = time.time() - run.started
    record = {
        "notebook": run.notebook,
        "profile": run.profile,
        "headline": headline,
        "metrics": metrics or {},
        "study": study or [],
        "notes": [*(notes or []), *(["caps: " + "; ".join(caps)] if caps else [])],
        "caps": caps,
        "params": run.params,
        "wall_seconds": wall,
        "precision": precision.describe(),  # what it trained and predicted in (lib.core.precision)
        "num_processes": distributed.world_size(),  # run_all.sh --num-processes: the ranks it trained and predicted on
        "stage_seconds": stages.seconds(wall),  # where the minutes went: load, train, predict, other (lib.core.stages)
        **peak_memory_mb(),
        "versions": versions(),
        "git_commit": git_commit(),
    }
    record = _clean(record)
    faults.point("report.finish")  # the run trained and scored; its record not written
    (run.out / "metrics.json").write_text(json.dumps(record, indent=2))
    return record
