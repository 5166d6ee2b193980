"""E-c loading on the real files, bad-row errors (file + line), submissions and their scoring."""
import numpy as np
import pytest

from lib.core.errors import LabError
from lib.data import semeval

HEAD = "\t".join(semeval.HEADER)
ROW = "2017-En-1\tI am so happy\t0\t0\t0\t0\t1\t0\t1\t0\t0\t0\t0"


def write(tmp_path, lines, name="f.txt"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_real_files_row_counts(data_dir):
    tr, dev, te = (semeval.load(s, str(data_dir)) for s in ("train", "dev", "test"))
    assert (len(tr.df), len(dev.df), len(te.df)) == (6838, 886, 3259)
    assert tr.labelled and dev.labelled and not te.labelled
    assert set(np.unique(tr.y)) == {0.0, 1.0}
    assert np.isnan(te.y).all()  # withheld test labels (NONE, CRLF file)
    assert int((tr.y.sum(1) == 0).sum()) == 204  # all-zero rows, as the data README says


@pytest.mark.parametrize("bad_row, needle", [
    ("2017-En-2\ttoo few\t0\t1", "expected 13 tab-separated columns"),
    ("2017-En-2\tlabel two\t0\t0\t0\t0\t2\t0\t1\t0\t0\t0\t0", "label joy='2'"),
    ("2017-En-1\tsame id\t0\t0\t0\t0\t1\t0\t1\t0\t0\t0\t0", "duplicate ID 2017-En-1 (first seen on line 2)"),
    ("2017-En-3\t   \t0\t0\t0\t0\t1\t0\t1\t0\t0\t0\t0", "empty tweet text"),
])
def test_bad_rows_cite_file_and_line(tmp_path, bad_row, needle):
    p = write(tmp_path, [HEAD, ROW, bad_row])
    with pytest.raises(LabError) as e:
        semeval.parse_file(p, labelled=True)
    assert f"{p}:3" in str(e.value) and needle in str(e.value)


def test_wrong_header(tmp_path):
    p = write(tmp_path, [HEAD.replace("anger", "angry"), ROW])
    with pytest.raises(LabError, match=r"f.txt:1: wrong header"):
        semeval.parse_file(p)


def test_drop_mode_counts_bad_rows(tmp_path):
    p = write(tmp_path, [HEAD, ROW, "2017-En-2\ttoo few\t0", "2017-En-1\tdup\t0\t0\t0\t0\t1\t0\t1\t0\t0\t0\t0",
                         ROW.replace("En-1", "En-9")])
    s = semeval.parse_file(p, labelled=True, on_bad="drop")
    assert len(s.df) == 2 and [line for line, _ in s.dropped] == [3, 4]


def test_missing_file_names_folder_and_how_to_get(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LabError) as e:
        semeval.load("train", str(tmp_path))
    msg = str(e.value)
    assert "2018-E-c-En-train.txt" in msg and str(tmp_path / "semeval2018_ec") in msg and "To fix" in msg


def test_submission_roundtrip_and_score(tmp_path):
    gold = write(tmp_path, [HEAD, ROW, ROW.replace("En-1", "En-2").replace("\t1\t0\t1", "\t0\t0\t0")], "gold.txt")
    g = semeval.parse_file(gold, labelled=True)
    sub = semeval.write_submission(g.df["ID"], g.y.astype(int), tmp_path / "submission.csv")
    assert sub.read_text().splitlines()[0] == "ID," + ",".join(semeval.EMOTIONS)
    rep = semeval.score_submission(sub, gold)
    assert rep["jaccard"] == 1.0
    assert semeval.main([str(sub), str(gold)]) == 0


def test_bad_submission_cites_line(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("ID," + ",".join(semeval.EMOTIONS) + "\n" + "x," + ",".join(["0"] * 10) + ",7\n")
    with pytest.raises(LabError, match=r"s.csv:2: labels must be 0/1"):
        semeval.read_submission(p)


def test_cross_validation_assembles_out_of_fold_validation_and_averages_test(data_dir):
    """emotion.cross_validate: the validation set is the union of the K folds (disjoint, each scored by its own
    model), test and hold-out probabilities are the mean over the K models."""
    from lib.running import params
    from lib.studies import emotion
    P = params.resolve({"PROFILE": "cpu", "DATA_DIR": str(data_dir), "SPLIT": "kfold", "N_SPLITS": 5}, "02_encoders")
    calls = []

    def fit_predict(d, seed):  # a stand-in model: validation probabilities = its labels / 2 + fold id; test = fold id
        k = len(calls)
        calls.append(set(d.val["ID"]))
        assert not calls[-1] & set(d.train["ID"])  # a model never validates on its own training tweets
        return d.y_val / 2 + k, np.full((len(d.test), 11), float(k)), np.full((len(d.holdout), 11), 2.0 * k), None

    data, pv, pt, ph, hists = emotion.cross_validate(P, fit_predict, 3, log=lambda *_: None)
    assert len(calls) == 3 and not (calls[0] & calls[1]) and not (calls[1] & calls[2])
    assert len(data.val) == sum(len(c) for c in calls) and set(data.val["ID"]) == calls[0] | calls[1] | calls[2]
    fold_of_row = np.repeat([0, 1, 2], [len(c) for c in calls])
    assert np.allclose(pv, data.y_val / 2 + fold_of_row[:, None])  # rows line up with their labels
    assert pt.shape == (3259, 11) and np.allclose(pt, 1.0) and np.allclose(ph, 2.0)  # means of 0,1,2 and 0,2,4
    with pytest.raises(LabError, match="CV_FOLDS=6"):
        emotion.cross_validate(P, fit_predict, 6)


def test_seed_ensemble_averages_models_on_one_split(data_dir):
    """emotion.seed_ensemble (02's SEEDS): every model trains and validates on the same split with its own seed; the
    probabilities are averaged; one model is the plain run; with CV_FOLDS it is refused."""
    from lib.running import params
    from lib.studies import emotion
    P = params.resolve({"PROFILE": "cpu", "DATA_DIR": str(data_dir), "SPLIT": "kfold", "N_SPLITS": 5}, "02_encoders")
    data = emotion.prepare(P)
    seeds = []

    def fit_predict(d, seed):  # a stand-in: probabilities = the seed's offset from SEED
        assert d.val is data.val and d.train is data.train  # one split for every model
        seeds.append(seed)
        k = float(seed - P.SEED)
        return np.full((len(d.val), 11), k), np.full((len(d.test), 11), 2 * k), np.full((len(d.holdout), 11), 3 * k), k

    d, pv, pt, ph, hists, singles = emotion.seed_ensemble(P, fit_predict, data, 3, log=lambda *_: None)
    assert seeds == [P.SEED, P.SEED + 1, P.SEED + 2] and hists == [0.0, 1.0, 2.0]
    assert np.allclose(pv, 1.0) and np.allclose(pt, 2.0) and np.allclose(ph, 3.0)  # means of 0,1,2 / 0,2,4 / 0,3,6
    assert "Seed ensemble: 3 models" in d.description and len(d.val) == len(data.val)
    seeds.clear()
    assert [m["seed"] for m in singles] == [P.SEED, P.SEED + 1, P.SEED + 2]
    assert all(set(m) == {"seed", "val_macro_f1", "val_macro_f1_insample", "holdout_macro_f1"} for m in singles)
    d1, pv1, *_, singles1 = emotion.seed_ensemble(P, fit_predict, data, 1, log=lambda *_: None)
    assert seeds == [P.SEED] and d1 is data and np.allclose(pv1, 0.0) and singles1 == []
    with pytest.raises(LabError, match="SEEDS=2"):
        emotion.seed_ensemble(params.resolve({"PROFILE": "cpu", "DATA_DIR": str(data_dir), "SPLIT": "kfold",
                                              "N_SPLITS": 5, "CV_FOLDS": 2}, "02_encoders"), fit_predict, data, 2)
    # a model scored alone: perfect probabilities score 1; the hold-out uses the thresholds tuned on validation
    perfect = emotion.single_scores(P, data, data.y_val, data.holdout[semeval.EMOTIONS].to_numpy(float), seed=7)
    assert perfect == {"seed": 7, "val_macro_f1": 1.0, "val_macro_f1_insample": 1.0, "holdout_macro_f1": 1.0}
