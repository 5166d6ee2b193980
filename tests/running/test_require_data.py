"""LAB_REQUIRE_DATA=1 (CI) turns ANY missing dataset into a failure, not only a missing SemEval file."""

import pytest
from conftest import DATASETS, require_data


def _tree(tmp_path, skip=None):
    for name, rel in DATASETS.items():
        if name != skip:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text("x")
    return tmp_path


@pytest.mark.parametrize("missing", list(DATASETS))
def test_missing_dataset_fails_in_ci_and_skips_elsewhere(tmp_path, monkeypatch, missing):
    d = _tree(tmp_path, skip=missing)
    monkeypatch.setenv("LAB_REQUIRE_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match=missing.replace("+", r"\+")):
        require_data(d)
    monkeypatch.delenv("LAB_REQUIRE_DATA")
    with pytest.raises(pytest.skip.Exception):
        require_data(d)


def test_complete_tree_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_REQUIRE_DATA", "1")
    assert require_data(_tree(tmp_path)) == tmp_path
