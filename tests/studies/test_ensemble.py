"""Emotion ensemble (notebook 07): weights on the simplex, thresholds and the nested estimate on validation only."""
import numpy as np
import pytest

from lib.core.errors import LabError
from lib.data import semeval
from lib.evaluation import blending, metrics, thresholds
from lib.running import params
from lib.studies import emotion, emotion_ensemble


def test_simplex_weights():
    assert blending.simplex(2, 2) == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    w = blending.simplex(3, 10)
    assert len(w) == 66 and all(abs(sum(x) - 1) < 1e-9 for x in w)  # C(12, 2) = 66


def test_fit_blend_puts_the_weight_on_the_informative_member():
    """Member A's probabilities are the labels themselves (a threshold in (0, 1] is perfect), member B is noise:
    the best blend leans on A (weight >= 0.5) with macro-F1 1.0, its nested estimate is perfect too, and B alone
    stays far below."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (120, 11))
    y[:6] = 1  # every class has positives
    a, b = y.astype(float), rng.random(y.shape)
    w, t, f = blending.fit_blend(y, [a, b], step=0.5)
    assert f == pytest.approx(1.0) and w[0] >= 0.5
    assert blending.nested_blend_score(y, [a, b], seed=0, step=0.5) == pytest.approx(1.0)
    _, _, f_noise = blending.fit_blend(y, [b], step=0.5)
    assert f_noise < 0.8


def test_load_member_names_the_missing_file(tmp_path):
    d = tmp_path / "02_encoders" / "x"
    d.mkdir(parents=True)
    with pytest.raises(LabError, match=r"probs_val.npy: missing; .*--only 02_encoders"):
        emotion_ensemble.load_member(d)
    np.save(d / "probs_val.npy", np.zeros((3, 11)))
    (d / "val_ids.txt").write_text("a\nb\n")
    with pytest.raises(LabError, match="3 rows but .* lists 2 tweets"):
        emotion_ensemble.load_member(d)


def _member(d, ids, probs, test_ids, test_probs, hold=None):
    d.mkdir(parents=True)
    np.save(d / "probs_val.npy", probs)
    (d / "val_ids.txt").write_text("\n".join(ids) + "\n")
    np.save(d / "probs_test.npy", test_probs)
    semeval.write_submission(test_ids, (test_probs > 0.5).astype(int), d / "submission.csv")
    if hold is not None:
        np.save(d / "probs_holdout.npy", hold[1])
        (d / "holdout_ids.txt").write_text("\n".join(hold[0]) + "\n")


def test_ensemble_end_to_end_on_real_ids(data_dir, tmp_path):
    """Two members on 300 real training tweets: a good one (labels + small noise) and a noisy one. The blend is
    scored in-sample, nested and on the dev hold-out; it writes a complete submission; test labels are never read."""
    rng = np.random.default_rng(1)
    tr = semeval.load("train", str(data_dir)).df.iloc[:300]
    dev = semeval.load("dev", str(data_dir)).df.iloc[:200]
    te = semeval.load("test", str(data_dir)).df
    y, y_h = tr[semeval.EMOTIONS].to_numpy(float), dev[semeval.EMOTIONS].to_numpy(float)
    good = lambda yy: np.clip(yy * 0.6 + rng.random(yy.shape) * 0.5, 0, 1)  # noqa: E731
    noisy = lambda yy: rng.random(yy.shape)  # noqa: E731
    test_p = rng.random((len(te), 11))
    _member(tmp_path / "runs" / "01_ffnn" / "a", list(tr.ID), good(y), list(te.ID), test_p, (list(dev.ID), good(y_h)))
    _member(tmp_path / "runs" / "02_encoders" / "b", list(tr.ID), noisy(y), list(te.ID), test_p, (list(dev.ID), noisy(y_h)))
    P = params.Params({"PROFILE": "smoke", "SEED": 0, "DATA_DIR": str(data_dir), "THRESHOLDS": "per_class",
                       "ON_BAD_ROWS": "error"},
                      out=tmp_path / "out", meta={"notebook": "07_emotion_ensemble", "t0": 0.0})
    P.out.mkdir()
    rec, table = emotion_ensemble.ensemble(P, [tmp_path / "runs" / "01_ffnn" / "a", tmp_path / "runs" / "02_encoders" / "b"], 0.5)
    assert list(table.index) == ["01_ffnn/a", "02_encoders/b", "blend (weighted mean)"]
    assert table.loc["01_ffnn/a", "val_macro_f1_nested"] > table.loc["02_encoders/b", "val_macro_f1_nested"] + 0.3
    h = rec["headline"]
    assert h["holdout_macro_f1"] > 0.7 and h["val_macro_f1"] > 0.7
    # the good member carries the blend: micro-F1 and Jaccard follow macro-F1, each a share in (0.5, 1]
    assert all(0.5 < h[k] <= 1 for k in ("val_micro_f1", "val_jaccard", "holdout_micro_f1", "holdout_jaccard"))
    assert (P.out / "figures" / "members_and_blend.png").is_file()
    sub = semeval.read_submission(P.out / "submission.csv")
    assert len(sub) == len(te) and list(sub.ID) == list(te.ID)


def test_members_must_predict_the_same_test_tweets(data_dir, tmp_path):
    te = semeval.load("test", str(data_dir)).df
    ids, y = list(semeval.load("train", str(data_dir)).df.ID[:20]), np.zeros((20, 11))
    _member(tmp_path / "01_ffnn" / "a", ids, y, list(te.ID), np.zeros((len(te), 11)))
    _member(tmp_path / "02_encoders" / "b", ids, y, list(te.ID[:10]), np.zeros((10, 11)))
    P = params.Params({"PROFILE": "smoke", "SEED": 0, "DATA_DIR": str(data_dir), "THRESHOLDS": "per_class",
                       "ON_BAD_ROWS": "error"},
                      out=tmp_path / "out", meta={"notebook": "07_emotion_ensemble", "t0": 0.0})
    P.out.mkdir()
    with pytest.raises(LabError, match="02_encoders/b: its submission.csv predicts 10 test tweets"):
        emotion_ensemble.ensemble(P, [tmp_path / "01_ffnn" / "a", tmp_path / "02_encoders" / "b"], 0.5)


def test_crossfit_score_is_plain_with_fixed_thresholds_and_honest_with_tuned_ones():
    """emotion.crossfit_score (every emotion run's headline validation number): with nothing tuned it is the plain
    macro-F1; on separable probabilities it is 1; on probabilities that carry no signal, thresholds tuned in-sample
    flatter the score while the cross-fitted one stays at the level of the data."""
    rng = np.random.default_rng(0)
    y = (rng.random((120, 11)) < 0.3).astype(int)  # 120 tweets: in-sample 0.444, cross-fitted 0.409 (seed 0)
    noise = rng.random((120, 11))
    fixed = emotion.crossfit_score(y, noise, "fixed", 0.5)
    assert fixed == pytest.approx(metrics.macro_f1(y, (noise >= 0.5).astype(int)))
    assert emotion.crossfit_score(y, 0.2 + 0.6 * y, "per_class") == pytest.approx(1.0)
    insample = metrics.macro_f1(y, thresholds.apply(noise, thresholds.choose(y, noise, "per_class")))
    crossfit = emotion.crossfit_score(y, noise, "per_class", seed=0)
    assert insample > crossfit + 0.02  # the in-sample search finds lucky thresholds on noise
    every = np.mean(2 * y.mean(0) / (1 + y.mean(0)))  # predicting every label: what tuned thresholds drift to
    assert crossfit < every + 0.01
