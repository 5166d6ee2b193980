"""The baselines every emotion report compares with (lib.studies.emotion.baselines), on hand-worked numbers."""
import json

import numpy as np
import pandas as pd
import pytest

from lib.core import paths
from lib.data.semeval import EMOTIONS
from lib.studies import emotion


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


def _ffnn_run(tmp_path, split_ids: dict, preds: dict, thr=0.5):
    """An FFNN run folder: per split its tweet IDs and probabilities (0.9 where `preds` says 1, else 0.1)."""
    run = tmp_path / emotion.FFNN_RUN
    run.mkdir(parents=True, exist_ok=True)
    for split, ids in split_ids.items():
        (run / f"{split}_ids.txt").write_text("\n".join(ids) + "\n")
        np.save(run / f"probs_{split}.npy", np.where(np.asarray(preds[split]) > 0, 0.9, 0.1))
    (run / "thresholds.json").write_text(json.dumps(dict.fromkeys(EMOTIONS, thr)))
    return run


def test_ffnn_run_is_scored_on_the_tweets_it_predicted(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path)
    y_val = _labels(4, {0: 2})                       # class 0 positive on a, b
    # the FFNN predicted these tweets (another order): class 0 on a and c -> tp 1, fp 1, fn 1: F1 1/2 for class 0;
    # the other 10 classes have no positives and no predictions: F1 0 -> macro 0.5 / 11
    ffnn_pred = _labels(4, {0: 1})
    ffnn_pred[2, 0] = 1
    _ffnn_run(tmp_path, {"val": ["a", "b", "c", "d"]}, {"val": ffnn_pred})
    d = _data(_labels(4, {0: 2}), y_val, ["a", "b", "c", "d"])
    b = emotion.baselines(None, d, "decoders", zero_shot={"macro_f1": 0.12})
    name = f"FFNN ({emotion.FFNN_RUN}; its thresholds were tuned on some of these tweets)"
    assert b[name] == {"val_macro_f1": pytest.approx(0.5 / 11)}
    assert b["the untuned model (zero-shot)"] == {"val_macro_f1": 0.12}
    lines = emotion.baseline_verdicts({"val_macro_f1": 0.03, "holdout_macro_f1": 0.4}, b)
    assert f"validation macro-F1 0.030 does NOT beat {name} (0.045)" in lines
    assert "validation macro-F1 0.030 does NOT beat the untuned model (zero-shot) (0.120)" in lines
    assert not any(k.startswith("FFNN") for k in emotion.baselines(None, d, "ffnn"))  # the FFNN's own report
    _ffnn_run(tmp_path, {"val": ["a", "b", "c", "z"]}, {"val": ffnn_pred})  # it did not predict d: no score
    assert not any(k.startswith("FFNN") for k in emotion.baselines(None, d, "decoders"))


def test_ffnn_validated_on_dev_is_compared_on_our_hold_out(tmp_path, monkeypatch):
    """The FFNN validates on the official dev file (SPLIT="dev"), which is 02's and 03's hold-out: it is scored there
    and only there, and the verdict compares hold-out with hold-out."""
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path)
    dev_ids = ["h1", "h2", "h3", "h4"]
    _ffnn_run(tmp_path, {"val": dev_ids + ["h5"]}, {"val": np.vstack([_labels(4, {1: 2}), _labels(1, {})])})
    d = _data(_labels(4, {0: 2}), _labels(4, {0: 1}), ["a", "b", "c", "d"])
    hold = pd.DataFrame(_labels(4, {1: 2}), columns=EMOTIONS).assign(ID=dev_ids)  # the FFNN got these right
    d = emotion.Data(d.train, d.val, hold, d.test, "hand-made", {})
    b = emotion.baselines(None, d, "encoders")
    name = f"FFNN ({emotion.FFNN_RUN}; its thresholds were tuned on some of these tweets)"
    assert b[name] == {"holdout_macro_f1": pytest.approx(1 / 11)}  # class 1 perfect, the others absent
    lines = emotion.baseline_verdicts({"val_macro_f1": 0.5, "holdout_macro_f1": 0.2}, b)
    assert f"hold-out macro-F1 0.200 beats {name} (0.091, on the same tweets)" in lines