"""Per-example evidence of a run, for the scorecard's bootstraps: what notebooks save (`save`, `save_pairs`,
`save_multitask`) and how the scorecard reads one *arm* of a claim (a run, and in it a variant, method or system)
back as samples of examples with the metric functions over them.

Where a run already saves its predictions (the emotion runs' probabilities and thresholds, 05's answers) they are
scored again here against the gold files under DATA_DIR; 04 and 06 save `evidence/*.npz` through this module.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lib.core.errors import LabError

EVIDENCE = "evidence"  # sub-folder of a run holding the .npz files


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def save(P, name: str, **arrays) -> Path:
    """<run>/evidence/<name>.npz: equal-length arrays, one row per evaluated example."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise LabError(f"evidence {name}: arrays of different lengths {lengths}; expected one row per example each")
    d = Path(P.out) / EVIDENCE
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{_slug(name)}.npz"
    np.savez_compressed(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def save_pairs(P, y, systems: dict) -> Path:
    """04: the test pairs' gold labels and each system's decision ({name: (scores, threshold)})."""
    return save(P, "pairs", y=np.asarray(y, int),
                **{f"pred_{_slug(k)}": (np.asarray(s) >= t).astype(np.int8) for k, (s, t) in systems.items()})


def save_multitask(P, name: str, preds: dict, dev) -> Path:
    """06: one variant's dev predictions ({"sst": probs, "para": P(dup), "sts": scores}) against dev's gold, one
    file per task (the three dev sets differ in size)."""
    f = dev.frames
    save(P, f"{name}_sst", correct=(preds["sst"].argmax(1) == f["sst"]["y"].to_numpy()).astype(np.int8))
    save(P, f"{name}_para", correct=((preds["para"] >= 0.5) == f["para"]["y"].to_numpy()).astype(np.int8))
    return save(P, f"{name}_sts", pred=np.asarray(preds["sts"], float), gold=f["sts"]["y"].to_numpy(float))


# ---------------------------------------------------------------- metrics over samples of examples

def _macro_f1(y, pred) -> float:
    """Macro-F1 over classes (columns), a class with no true and no predicted positives scoring 0, as
    lib.evaluation.metrics.macro_f1 (sklearn, zero_division=0); numpy here because the bootstrap calls it thousands of times."""
    tp = (y * pred).sum(0)
    denom = y.sum(0) + pred.sum(0)
    return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


def _pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _prf(y, p) -> dict:
    tp = float((y * p).sum())
    prec = tp / p.sum() if p.sum() else 0.0
    rec = tp / y.sum() if y.sum() else 0.0
    return {"coref_precision": prec, "coref_recall": rec,
            "coref_f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0, "accuracy": float((y == p).mean())}


def _overall(s, sst, para, sts) -> float:
    from lib.data import sentence_tasks
    return sentence_tasks.overall_score(float(s["sst"]["correct"][sst].mean()), float(s["para"]["correct"][para].mean()),
                                 _pearson(s["sts"]["pred"][sts], s["sts"]["gold"][sts]))


# metric -> (the samples it reads, f(samples, **index arrays) -> value)
METRICS = {
    "macro_f1": (("tweets",), lambda s, tweets: _macro_f1(s["tweets"]["y"][tweets], s["tweets"]["pred"][tweets])),
    "f1": (("questions",), lambda s, questions: float(s["questions"]["f1"][questions].mean())),
    "em": (("questions",), lambda s, questions: float(s["questions"]["em"][questions].mean())),
    "sst_acc": (("sst",), lambda s, sst: float(s["sst"]["correct"][sst].mean())),
    "para_acc": (("para",), lambda s, para: float(s["para"]["correct"][para].mean())),
    "sts_r": (("sts",), lambda s, sts: _pearson(s["sts"]["pred"][sts], s["sts"]["gold"][sts])),
    "overall": (("sst", "para", "sts"), _overall),
    **{k: (("pairs",), (lambda key: lambda s, pairs: _prf(s["pairs"]["y"][pairs], s["pairs"]["pred"][pairs])[key])(k))
       for k in ("coref_f1", "coref_precision", "coref_recall", "accuracy")},
}
# metrics measured once per run, with no examples to resample
POINT_METRICS = ("train_seconds",)


@dataclass
class Arm:
    """One side of a claim, read from a run folder: samples {name: {field: array}}, the example IDs of each sample
    where runs must be aligned (emotion runs), point measurements, and a description for the scorecard."""
    run_dir: Path
    part: str = ""
    samples: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)
    points: dict = field(default_factory=dict)
    source: str = ""

    def statistic(self, metric: str):
        names, f = METRICS[metric]
        return lambda **idx: f(self.samples, **{k: idx[k] for k in names})

    def sizes(self, metric: str) -> dict:
        names, _ = METRICS[metric]
        return {k: len(next(iter(self.samples[k].values()))) for k in names}

    def value(self, metric: str) -> float:
        if metric in POINT_METRICS:
            return float(self.points[metric])
        return self.statistic(metric)(**{k: np.arange(n) for k, n in self.sizes(metric).items()})


def align(a: Arm, b: Arm, metric: str) -> tuple[Arm, Arm]:
    """The two arms restricted to the examples both scored, in the same order (by ID where IDs are known)."""
    names, _ = METRICS[metric]
    out_a, out_b = Arm(a.run_dir, a.part, dict(a.samples), {}, a.points, a.source), \
        Arm(b.run_dir, b.part, dict(b.samples), {}, b.points, b.source)
    for k in names:
        if k in a.ids and k in b.ids:
            pos_b = {i: j for j, i in enumerate(b.ids[k])}
            common = [(i, pos_b[x]) for i, x in enumerate(a.ids[k]) if x in pos_b]
            if not common:
                raise LabError(f"{a.run_dir} and {b.run_dir}: no {k} in common; expected the same evaluated examples")
            ia, ib = map(np.asarray, zip(*common))
            out_a.samples[k] = {f: v[ia] for f, v in a.samples[k].items()}
            out_b.samples[k] = {f: v[ib] for f, v in b.samples[k].items()}
        else:
            na, nb = len(next(iter(a.samples[k].values()))), len(next(iter(b.samples[k].values())))
            if na != nb:
                raise LabError(f"{a.run_dir} / {b.run_dir}: {na} vs {nb} {k} examples and no IDs to align them")
    return out_a, out_b


# ---------------------------------------------------------------- reading an arm back from a run folder

def _metrics_json(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def _emotion(run_dir: Path, part: str, data_dir: str) -> Arm:
    """An emotion run's predictions on the official dev file (02/03/07's hold-out; 01's validation) at its
    thresholds, against the dev file's gold labels."""
    from lib.data import semeval
    from lib.evaluation import thresholds
    split = "holdout" if (run_dir / "holdout_ids.txt").is_file() else "val"
    ids = (run_dir / f"{split}_ids.txt").read_text().split()
    probs = np.load(run_dir / f"probs_{split}.npy")
    t = thresholds.load(run_dir / "thresholds.json", semeval.EMOTIONS)
    gold = semeval.load("dev", data_dir).df.assign(ID=lambda d: d["ID"].astype(str)).set_index("ID")
    known = [i for i in ids if i in gold.index]
    if len(known) != len(ids):  # validation on a fold of the train file: not the dev tweets
        raise LabError(f"{run_dir}: its {split} tweets are not the official dev file's; no dev-file evidence")
    pred = thresholds.apply(probs, t).astype(np.int8)
    y = gold.loc[ids, semeval.EMOTIONS].to_numpy(np.int8)
    tuned = " (thresholds tuned on these tweets)" if split == "val" else ""
    return Arm(run_dir, part, {"tweets": {"y": y, "pred": pred}}, {"tweets": ids}, {},
               f"{len(ids):,} official dev tweets{tuned}")


def _qa(run_dir: Path, part: str, data_dir: str) -> Arm:
    """05: one method's answers, scored per question (official EM / F1, percent) against the SQuAD dev file."""
    from lib.studies import squad
    path = run_dir / f"predictions_{part}.json"
    if not path.is_file():
        raise LabError(f"{path}: missing; the run did not train method {part!r}")
    preds = json.loads(path.read_text())
    gold = {ex["id"]: ex for ex in squad.load_dev(data_dir) if ex["id"] in preds}
    _, per = squad.squad_scores(preds, list(gold.values()))
    ids = list(per)
    m = _metrics_json(run_dir).get("metrics", {}).get(part, {})
    points = {"train_seconds": m["train_seconds"]} if "train_seconds" in m else {}
    return Arm(run_dir, part, {"questions": {"f1": 100 * np.array([per[i]["f1"] for i in ids]),
                                             "em": 100 * np.array([per[i]["em"] for i in ids])}},
               {"questions": ids}, points, f"{len(ids):,} held-out questions")


def _npz(run_dir: Path, name: str) -> dict:
    path = run_dir / EVIDENCE / f"{_slug(name)}.npz"
    if not path.is_file():
        raise LabError(f"{path}: missing; the run saved no per-example evidence for {name!r} (re-run it)")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _multitask(run_dir: Path, part: str, data_dir: str) -> Arm:
    samples = {t: _npz(run_dir, f"{part}_{t}") for t in ("sst", "para", "sts")}
    v = _metrics_json(run_dir).get("metrics", {}).get("variants", {}).get(part, {})
    points = {"train_seconds": v["train_seconds"]} if "train_seconds" in v else {}
    n = {t: len(next(iter(s.values()))) for t, s in samples.items()}
    return Arm(run_dir, part, samples, {}, points, f"dev SST {n['sst']:,} / PARA {n['para']:,} / STS {n['sts']:,}")


def _cdec(run_dir: Path, part: str, data_dir: str) -> Arm:
    z = _npz(run_dir, "pairs")
    key = f"pred_{_slug(part)}"
    if key not in z:
        raise LabError(f"{run_dir}: no decisions of system {part!r} saved (it did not run)")
    return Arm(run_dir, part, {"pairs": {"y": z["y"], "pred": z[key]}}, {}, {}, f"{len(z['y']):,} test pairs")


READERS = {"01_ffnn": _emotion, "02_encoders": _emotion, "03_qlora_decoders": _emotion,
           "07_emotion_ensemble": _emotion, "05_qa": _qa, "06_multitask": _multitask, "04_cdec": _cdec}


def read_arm(run_dir: Path, part: str = "", data_dir: str = "") -> Arm:
    """The evidence of `run_dir` (outputs/<notebook>/<run>) for one variant / method / system `part`."""
    notebook = Path(run_dir).parent.name
    if notebook not in READERS:
        raise LabError(f"{run_dir}: no evidence reader for notebook {notebook}; expected one of {', '.join(READERS)}")
    return READERS[notebook](Path(run_dir), part, data_dir)
