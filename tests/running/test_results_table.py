import json

import pytest

from lib.core.errors import LabError
from lib.running import profiles, results_table


def _fake_run(out, nb, run, profile, headline, stage_seconds=None):
    d = out / nb / run
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"profile": profile, "headline": headline,
                                                 "stage_seconds": stage_seconds or {}}))


def test_the_table_is_the_runs_own_numbers_and_their_sum(tmp_path, monkeypatch):
    monkeypatch.setitem(profiles.RUNS, "cpu", [("01_ffnn", "naive", {}), ("01_ffnn", "improved", {}),
                                               ("05_qa", "minilm", {})])
    _fake_run(tmp_path, "01_ffnn", "naive", "cpu", {"val_macro_f1": 0.3831})
    _fake_run(tmp_path, "01_ffnn", "improved", "smoke", {"val_macro_f1": 0.1})  # another profile's: not this table's
    _fake_run(tmp_path, "05_qa", "minilm", "cpu", {"f1_full": 50.46},
              {"load": 20.0, "train": 400.0, "predict": 100.0, "other": 32.0})  # 400 / 552 = 72%
    (tmp_path / "timings.json").write_text(json.dumps({"cpu": {"01_ffnn/naive": 30, "05_qa/minilm": 552}}))
    md = results_table.markdown("cpu", tmp_path)
    assert "| 01_ffnn/naive | 0.5 | – | val_macro_f1 0.383 |" in md  # no stage times recorded
    assert "| 01_ffnn/improved | – | – | not run |" in md
    assert "| 05_qa/minilm | 9.2 | train 72% | f1_full 50.5 |" in md
    assert "| **total** | **9.7** (1 runs missing) | | |" in md


def test_write_replaces_only_the_marked_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results_table.START}\nold\n{results_table.END}\noutro\n")
    results_table.write(readme, "new table")
    assert readme.read_text() == f"intro\n{results_table.START}\nnew table\n{results_table.END}\noutro\n"
    readme.write_text("no markers")
    with pytest.raises(LabError, match="markers"):
        results_table.write(readme, "x")


def test_damaged_timings_name_the_file(tmp_path):
    (tmp_path / "timings.json").write_text('{"cpu": {')
    with pytest.raises(LabError, match=r"timings.json:1: damaged JSON"):
        results_table.rows("cpu", tmp_path)
