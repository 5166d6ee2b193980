"""Folders of the lab, anchored on this file (never on the working directory)."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root (lib/core/paths.py)
NOTEBOOKS = ROOT / "notebooks"
OUTPUTS = Path(os.environ.get("LAB_OUTPUTS") or ROOT / "outputs").resolve()  # run_all.sh writes here


def data_dir(override: str = "") -> Path:
    """The data folder: the DATA_DIR parameter, else $DATA_DIR, else <repo>/data."""
    return Path(override or os.environ.get("DATA_DIR") or ROOT / "data").expanduser().resolve()


def cache_dir() -> Path:
    """Where converted model checkpoints live ($LAB_CACHE, default ~/.cache/nlp-lab); outside the repo so clones share it."""
    p = Path(os.environ.get("LAB_CACHE") or Path.home() / ".cache" / "nlp-lab").expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p
