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


def _install_chromium() -> str:
    """apt-get install chromium; '' on success, else why it could not be installed."""
    import shutil
    import subprocess
    if not shutil.which("apt-get"):
        return "no apt-get on this machine (install a Chromium and put it on PATH)"
    if os.geteuid() != 0:
        return "apt-get needs root here (run: apt-get install -y chromium)"
    for cmd in (["apt-get", "install", "-y", "--no-install-recommends", "chromium"], ["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{' '.join(cmd)}: {e}"
        if proc.returncode == 0 and cmd[1] == "install":
            return ""
    return f"apt-get install chromium failed: {proc.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless Chromium binary; installed with apt-get when missing, skipped (saying why) where it cannot be."""
    from lib.running import browser
    path = browser.find_chromium()
    if not path:
        why = _install_chromium()
        path = browser.find_chromium()
        if not path:
            pytest.skip(f"headless Chromium unavailable: {why or 'installed, but not found on PATH'}")
    return path


def runner_script(notebooks: Path, runs: list) -> str:
    """Python source that starts lib.running.runner.main as run_all.sh does (the smoke profile, then its own
    command-line arguments), over the notebooks in `notebooks` with profiles.RUNS['smoke'] = `runs`."""
    return ("import sys; from pathlib import Path; from lib.running import runner, profiles; from lib.core import paths; "
            f"paths.NOTEBOOKS = Path({str(notebooks)!r}); profiles.RUNS['smoke'] = {runs!r}; "
            "sys.exit(runner.main(['--profile', 'smoke'] + sys.argv[1:]))")
