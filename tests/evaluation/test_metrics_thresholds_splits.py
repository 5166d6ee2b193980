"""Hand-worked checks of the emotion building blocks: metrics, thresholds, class weights, stratified folds."""
import numpy as np
import pytest

from lib.data import splits
from lib.evaluation import metrics, thresholds

# 4 tweets x 3 labels, worked by hand in the comments below.
GOLD = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 1]])
PRED = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0]])


def test_jaccard_by_hand():
    # t1: 1/1; t2: {0} / {0,1,2} = 1/3; t3: empty vs empty counts 1; t4: {1} / {1,2} = 1/2
    assert metrics.jaccard_accuracy(GOLD, PRED) == pytest.approx((1 + 1 / 3 + 1 + 0.5) / 4)


def test_macro_and_micro_f1_by_hand():
    # label 0: P=R=1 -> F1 1; label 1: P=1, R=1/2 -> 2/3; label 2: no true positive -> 0
    assert metrics.macro_f1(GOLD, PRED) == pytest.approx((1 + 2 / 3 + 0) / 3)
    # micro: TP 3, FP 1, FN 2 -> P 3/4, R 3/5 -> F1 2/3
    assert metrics.micro_f1(GOLD, PRED) == pytest.approx(2 / 3)
    rep = metrics.multilabel_report(GOLD, PRED, ["a", "b", "c"])
    assert rep["per_class"]["b"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})


def test_per_class_threshold_finds_known_optimum():
    y = np.array([[0, 1], [0, 1], [1, 0], [1, 0], [1, 1]])
    p = np.array([[0.10, 0.90], [0.30, 0.70], [0.35, 0.20], [0.60, 0.10], [0.80, 0.65]])
    # class 0: any t in (0.30, 0.35] separates perfectly; ties break towards 0.5 -> 0.35
    # class 1: any t in (0.20, 0.65] separates perfectly; closest to 0.5 -> 0.50
    t = thresholds.per_class(y, p)
    assert t == pytest.approx([0.35, 0.50])
    assert metrics.macro_f1(y, thresholds.apply(p, t)) == 1.0


def test_global_and_fixed_thresholds():
    y = np.array([[1], [1], [0], [0]])
    p = np.array([[0.9], [0.45], [0.4], [0.1]])
    # every t in (0.40, 0.45] is perfect; the search returns the first such grid point
    assert thresholds.global_threshold(y, p) == pytest.approx(0.41)
    assert thresholds.choose(y, p, "fixed", 0.3).tolist() == [0.3]
    with pytest.raises(ValueError):
        thresholds.choose(y, p, "bogus")


def test_thresholds_save_load_roundtrip(tmp_path):
    thresholds.save([0.2, 0.7], ["a", "b"], tmp_path / "t.json")
    assert thresholds.load(tmp_path / "t.json", ["b", "a"]).tolist() == [0.7, 0.2]


def test_pos_weight_from_each_class_rate():
    y = np.array([[1, 0], [0, 0], [0, 1], [0, 1]])
    # class 0: 1 positive, 3 negatives -> 3; class 1: 2 and 2 -> 1
    assert splits.pos_weight(y).tolist() == [3.0, 1.0]


def test_stratified_folds_keep_label_rates():
    rng = np.random.default_rng(0)
    rates = np.array([0.4, 0.2, 0.05, 0.02])
    y = (rng.random((2000, 4)) < rates).astype(int)
    folds = splits.stratified_folds(y, n_splits=10, seed=1)
    assert len(folds) == 10
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen.tolist()) == list(range(2000))  # every row validates exactly once
    overall = y.mean(0)
    for tr, va in folds:
        assert not set(tr) & set(va)
        # stated tolerance: each label's validation rate within 1 percentage point of the overall rate
        assert np.abs(y[va].mean(0) - overall).max() < 0.01
    # seeded: same folds again
    assert all((a[1] == b[1]).all() for a, b in zip(folds, splits.stratified_folds(y, 10, seed=1)))


def test_pos_weight_power_hand_worked():
    from lib.data import splits
    y = [[1, 0], [0, 0], [0, 0], [0, 1]]  # class 0: 1 positive, 3 negatives; class 1 the same
    assert splits.pos_weight(y).tolist() == [3.0, 3.0]
    assert np.allclose(splits.pos_weight(y, 0.5), [3 ** 0.5, 3 ** 0.5])


def test_f1_curve_matches_sklearn_at_every_threshold():
    import numpy as np
    from sklearn.metrics import f1_score

    from lib.evaluation import thresholds as th
    rng = np.random.default_rng(0)
    for y in (rng.integers(0, 2, 200), np.zeros(50, int)):  # the second: no positives (zero_division -> 0)
        p = rng.random(len(y))
        want = [f1_score(y, (p >= t).astype(int), zero_division=0) for t in th.GRID]
        assert np.allclose(th.f1_curve(y, p), want, atol=1e-12)
