import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _data_dir() -> Path:
    return Path(os.environ.get("DATA_DIR") or ROOT / "data").resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets; skipped when absent unless LAB_REQUIRE_DATA=1 (CI), where absence fails."""
    d = _data_dir()
    if not (d / "semeval2018_ec" / "2018-E-c-En-train.txt").exists():
        msg = f"datasets not found in {d} (set DATA_DIR, e.g. DATA_DIR=../shared/datasets)"
        if os.environ.get("LAB_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return d
