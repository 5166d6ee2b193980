import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# every dataset the lab's tests and notebooks read, by a file that must be there
DATASETS = {
    "SemEval-2018 E-c": "semeval2018_ec/2018-E-c-En-train.txt",
    "SQuAD v1.1 dev": "squad_v1.1/dev-v1.1.json",
    "minBERT": "minbert/ids-sst-train.csv",
    "SICK": "sick/SICK.txt",
    "ECB+": "ecbplus/ECBplus_coreference_sentences.csv",
}


def _data_dir() -> Path:
    return Path(os.environ.get("DATA_DIR") or ROOT / "data").resolve()


def missing_datasets(d: Path) -> list[str]:
    return [f"{name} ({d / rel})" for name, rel in DATASETS.items() if not (d / rel).exists()]


def require_data(d: Path) -> Path:
    """Skip when datasets are missing, unless LAB_REQUIRE_DATA=1 (CI), where a missing dataset fails."""
    missing = missing_datasets(d)
    if missing:
        msg = f"datasets not found: {'; '.join(missing)} (set DATA_DIR, e.g. DATA_DIR=../shared/datasets)"
        if os.environ.get("LAB_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (all of them); skipped when any is absent unless LAB_REQUIRE_DATA=1 (CI): then it fails."""
    return require_data(_data_dir())
