"""The regression tier's comparison on a hand-made outputs tree (the real check runs after the smoke run)."""
import json

from lib.running import smoke_pins


def _run(out, name, headline, profile="smoke"):
    d = out / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"profile": profile, "headline": headline}))


def test_collect_keeps_quality_numbers_of_smoke_runs(tmp_path):
    _run(tmp_path, "01_ffnn/naive", {"val_macro_f1": 0.25, "train_seconds": 3.0, "train_minutes": 0.05, "ok": True})
    _run(tmp_path, "01_ffnn/cpu_run", {"val_macro_f1": 0.5}, profile="cpu")
    assert smoke_pins.collect(tmp_path) == {"01_ffnn/naive": {"val_macro_f1": 0.25}}


def test_compare_within_and_outside_tolerance():
    exp = {"a/x": {"f1": 0.5, "conll": 70.0}}
    # tolerance: 0.01 + 0.02 * 0.5 = 0.02 for f1; 0.01 + 0.02 * 70 = 1.41 for conll
    assert smoke_pins.compare({"a/x": {"f1": 0.519, "conll": 71.4}}, exp) == []
    p = smoke_pins.compare({"a/x": {"f1": 0.521, "conll": 68.5}}, exp)
    assert p[0] == "a/x: f1 = 0.5210, pinned 0.5000 (tolerance ±0.0200)"
    assert p[1] == "a/x: conll = 68.5000, pinned 70.0000 (tolerance ±1.4100)"
    assert "python -m lib.running.smoke_pins update" in p[-1]
    assert smoke_pins.compare({"a/x": {"f1": 0.5}}, exp)[0] == "a/x: conll pinned at 70.0 but missing from metrics.json"
    assert smoke_pins.compare({}, exp)[0] == "a/x: pinned but not produced by this smoke run"
    assert smoke_pins.compare({"a/x": {"f1": 0.5, "conll": 70.0}, "b/y": {"f1": 1.0}}, exp)[0] == \
        "b/y: produced but not pinned"


def test_update_then_check_round_trip(tmp_path, monkeypatch):
    _run(tmp_path, "05_qa/minilm", {"full_f1": 12.5})
    monkeypatch.setattr(smoke_pins, "EXPECTED", tmp_path / "expected.json")
    assert smoke_pins.main(["update", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "expected.json").read_text()) == {"05_qa/minilm": {"full_f1": 12.5}}
    assert smoke_pins.main(["check", str(tmp_path)]) == 0
    (tmp_path / "05_qa/minilm/metrics.json").write_text(json.dumps({"profile": "smoke", "headline": {"full_f1": 20.0}}))
    assert smoke_pins.main(["check", str(tmp_path)]) == 1
