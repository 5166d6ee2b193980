"""The baselines every emotion report compares with (lib.emotion.baselines), on hand-worked numbers."""
import json

import numpy as np
import pandas as pd
import pytest

from lib import emotion, paths
from lib.semeval import EMOTIONS


def _data(y_train, y_val, val_ids):
    def frame(y, ids):
        return pd.DataFrame(np.asarray(y, dtype=float), columns=EMOTIONS).assign(ID=ids)
    return emotion.Data(frame(y_train, [f"t{i}" for i in range(len(y_train))]), frame(y_val, val_ids), None,
                        frame(y_val, val_ids), "hand-made", {})


def _labels(rows, cols):
    y = np.zeros((rows, len(EMOTIONS)))
    for c, positives in cols.items():
        y[:positives, c] = 1
    return y


def test_chance_and_every_label_on_hand_worked_prevalences(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path)
    # class 0: train rate 1/2, val rate 1/4 -> chance F1 2*(1/4)(1/2)/(3/4) = 1/3, every-label F1 2(1/4)/(5/4) = 0.4
    # class 1: train rate 1/4, val rate 1/2 -> chance 1/3, every-label 2(1/2)/(3/2) = 2/3; other classes absent: 0
    d = _data(_labels(4, {0: 2, 1: 1}), _labels(4, {0: 1, 1: 2}), ["a", "b", "c", "d"])
    b = emotion.baselines(None, d, "encoders")
    assert b["chance (each label at its training rate)"]["val_macro_f1"] == pytest.approx((1 / 3 + 1 / 3) / 11)
    assert b["every label predicted"]["val_macro_f1"] == pytest.approx((0.4 + 2 / 3) / 11)
    assert not any(k.startswith("FFNN") for k in b)  # no FFNN run in this outputs folder


def test_ffnn_run_is_a_baseline_only_on_the_same_validation_tweets(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path)
    run = tmp_path / emotion.FFNN_RUN
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"headline": {"val_macro_f1": 0.49, "holdout_macro_f1": 0.44}}))
    (run / "val_ids.txt").write_text("b\na\nc\nd\n")  # same tweets, another order
    d = _data(_labels(4, {0: 2}), _labels(4, {0: 1}), ["a", "b", "c", "d"])
    b = emotion.baselines(None, d, "decoders", zero_shot={"macro_f1": 0.12})
    assert b[f"FFNN ({emotion.FFNN_RUN})"] == {"val_macro_f1": 0.49, "holdout_macro_f1": 0.44}
    assert b["the untuned model (zero-shot)"] == {"val_macro_f1": 0.12}
    lines = emotion.baseline_verdicts({"val_macro_f1": 0.468, "holdout_macro_f1": 0.447}, b)
    assert "validation macro-F1 0.468 does NOT beat FFNN (01_ffnn/improved) (0.490); hold-out 0.447 vs 0.440 (above)" in lines
    assert "validation macro-F1 0.468 beats the untuned model (zero-shot) (0.120)" in lines
    assert not any(k.startswith("FFNN") for k in emotion.baselines(None, d, "ffnn"))  # the FFNN's own report
    (run / "val_ids.txt").write_text("a\nb\nc\nz\n")  # another split: not comparable, left out
    assert not any(k.startswith("FFNN") for k in emotion.baselines(None, d, "decoders"))
