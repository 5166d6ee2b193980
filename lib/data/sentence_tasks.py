"""The CS224N minBERT data (SST-5, Quora, STS-B, CFIMDB) and SICK: loaders, label mappings, the offline Quora split.

Files (minbert/ in DATA_DIR) are tab-separated despite `.csv`; the first column is an unnamed pandas index.
Oddities handled here (see the datasets README):
* `ids-*-test-student.csv` have the header `0<TAB><TAB>id<TAB>sentence`: an extra counter column and a float index.
* Some Quora/CFIMDB fields are CSV-quoted (tripled quotes). Each line is parsed on its own (no field spans lines), so
  the 2 Quora rows with an unbalanced opening quote (index 65479, 264614) cannot swallow the next line; they have an
  empty `is_duplicate` and are malformed rows: `on_bad="error"` stops naming file and line, `"drop"` drops and counts.
* Quora `is_duplicate` is written `0.0`/`1.0` and read as int 0/1.
Only `quora-dev.csv` (20,214 pairs) exists offline: `quora_split` cuts it into a training part and a disjoint
evaluation part (by question text, so no question is in both).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core import paths, stages
from lib.core.errors import LabError, read_text

TASKS = ("sst", "para", "sts")  # the multitask model's tasks: SST-5 sentiment, Quora paraphrase, STS similarity
FILES = {
    "sst": {"train": "ids-sst-train.csv", "dev": "ids-sst-dev.csv", "test": "ids-sst-test-student.csv"},
    "cfimdb": {"train": "ids-cfimdb-train.csv", "dev": "ids-cfimdb-dev.csv", "test": "ids-cfimdb-test-student.csv"},
    "quora": {"dev": "quora-dev.csv"},
    "sts": {"train": "sts-train.csv", "dev": "sts-dev.csv", "test": "sts-test-student.csv"},
}
LABEL = {"sst": "sentiment", "cfimdb": "sentiment", "quora": "is_duplicate", "sts": "similarity"}
TEXT = {"sst": ["sentence"], "cfimdb": ["sentence"], "quora": ["sentence1", "sentence2"],
        "sts": ["sentence1", "sentence2"]}


@dataclass
class Table:
    """A loaded file: the rows and the (line, reason) of every row dropped with on_bad="drop"."""
    df: pd.DataFrame
    path: Path
    dropped: list = field(default_factory=list)


def _file(data_dir, task: str, split: str) -> Path:
    if split not in FILES.get(task, {}):
        raise LabError(f"minbert {task}/{split}: no such file; available: "
                       f"{', '.join(f'{t}/{s}' for t, d in FILES.items() for s in d)}")
    path = paths.data_dir(str(data_dir) if data_dir else "") / "minbert" / FILES[task][split]
    if not path.exists():
        raise LabError(f"{path}: file not found; put the CS224N minBERT data files (data/ of "
                       f"gpoesia/minbert-default-final-project) in {path.parent}")
    return path


@stages.timed("load")
def read(task: str, split: str, data_dir="", on_bad: str = "error") -> Table:
    """Read one minBERT file into columns id, <text column(s)>, [label] (label int for sst/cfimdb/quora, float sts)."""
    if on_bad not in ("error", "drop"):
        raise LabError(f"on_bad must be 'error' or 'drop', got {on_bad!r}")
    path = _file(data_dir, task, split)
    texts, label = TEXT[task], LABEL[task]
    lines = read_text(path, f"a tab-separated minBERT {task} file (columns id, {', '.join(texts)}"
                            f"{', ' + label if split != 'test' else ''})").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header = next(csv.reader([lines[0]], delimiter="\t"))
    # the test-student files: "0, '', id, sentence" -> counter, float index, id, sentence
    odd = header[:2] == ["0", ""]
    names = ["_counter", "_index", *header[2:]] if odd else ["_index", *header[1:]]
    want = ["id", *texts] + ([label] if split != "test" else [])
    missing = [c for c in want if c not in names]
    if missing:
        raise LabError(f"{path}:1: header {header} lacks {missing}; expected columns {want}")
    pos = {c: names.index(c) for c in want}
    rows, dropped, seen = [], [], set()
    for n, line in enumerate(lines[1:], start=2):
        cells = next(csv.reader([line], delimiter="\t"))
        problem = None
        if len(cells) != len(names):
            problem = f"{len(cells)} fields, expected {len(names)}"
        else:
            rec = {c: cells[i] for c, i in pos.items()}
            if not rec["id"]:
                problem = "empty id"
            elif rec["id"] in seen:
                problem = f"duplicate id {rec['id']}"
            elif any(not rec[t].strip() for t in texts):
                problem = "empty sentence"
            elif label in rec:
                try:
                    v = float(rec[label])
                except ValueError:
                    v = None
                if v is None or not np.isfinite(v):
                    problem = f"{label} {rec[label]!r} is not a number"
                elif task == "sts" and not 0 <= v <= 5:
                    problem = f"similarity {v} outside 0-5"
                elif task != "sts" and (v != int(v) or not 0 <= v <= (4 if task == "sst" else 1)):
                    problem = f"{label} {rec[label]!r} is not a class label"
                else:
                    rec[label] = v if task == "sts" else int(v)
        if problem:
            if on_bad == "error":
                raise LabError(f"{path}:{n}: {problem}; expected {len(names)} tab-separated fields "
                               f"({', '.join(names)}) with a valid {label} "
                               f"(06's DATA={{\"on_bad_rows\": \"drop\"}} drops such rows)")
            dropped.append((n, problem))
            continue
        seen.add(rec["id"])
        rows.append(rec)
    df = pd.DataFrame(rows, columns=want)
    for t in texts:
        df[t] = df[t].str.strip()
    return Table(df, path, dropped)


# ---- label mappings of the extra data (study 002) ----

def cfimdb_to_sst(labels, mode: str = "polar") -> np.ndarray:
    """CFIMDB 0/1 -> SST 0-4: polar maps negative/positive to 0/4, nonpolar to 1/3."""
    lo, hi = {"polar": (0, 4), "nonpolar": (1, 3)}.get(mode, (None, None))
    if lo is None:
        raise LabError(f"CFIMDB mapping {mode!r}: expected polar | nonpolar")
    y = np.asarray(labels)
    if not np.isin(y, [0, 1]).all():
        raise LabError("CFIMDB labels must be 0/1")
    return np.where(y == 1, hi, lo).astype(int)


def sick_to_sts(scores) -> np.ndarray:
    """SICK relatedness 1-5 -> STS 0-5: (s - 1) * 1.25."""
    s = np.asarray(scores, dtype=float)
    if ((s < 1) | (s > 5)).any():
        raise LabError("SICK relatedness must lie in 1-5")
    return (s - 1) * 1.25


@stages.timed("load")
def read_sick(data_dir="", sets=("TRAIN", "TRIAL", "TEST")) -> pd.DataFrame:
    """SICK.txt (CRLF, 12 columns) -> id, sentence1, sentence2, similarity (rescaled onto 0-5), relatedness, set."""
    path = paths.data_dir(str(data_dir) if data_dir else "") / "sick" / "SICK.txt"
    if not path.exists():
        raise LabError(f"{path}: file not found; put SICK.txt (the full SICK release file) in {path.parent}")
    rows = list(csv.reader(io.StringIO(read_text(path, "the SICK release file SICK.txt (tab-separated, 12 columns)"),
                                       newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    need = ["pair_ID", "sentence_A", "sentence_B", "relatedness_score", "SemEval_set"]
    if [c for c in need if c not in header]:
        raise LabError(f"{path}:1: header lacks {[c for c in need if c not in header]}; expected SICK.txt's 12 columns")
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise LabError(f"{path}:{n}: {len(r)} tab-separated fields, expected {len(header)} ({', '.join(header)}) "
                           "(a truncated or damaged SICK.txt?)")
        score = r[header.index("relatedness_score")]
        try:
            in_range = 1 <= float(score) <= 5
        except ValueError:
            raise LabError(f"{path}:{n}: relatedness_score {score!r} is not a number; expected 1-5") from None
        if not in_range:
            raise LabError(f"{path}:{n}: relatedness_score {score} is outside SICK's 1-5 scale")
    df = pd.DataFrame(rows[1:], columns=header)
    df["relatedness_score"] = df["relatedness_score"].astype(float)
    df = df[df["SemEval_set"].str.strip().isin(sets)]
    return pd.DataFrame({"id": "sick-" + df["pair_ID"], "sentence1": df["sentence_A"].str.strip(),
                         "sentence2": df["sentence_B"].str.strip(),
                         "similarity": sick_to_sts(df["relatedness_score"].to_numpy()),
                         "relatedness": df["relatedness_score"].to_numpy(), "set": df["SemEval_set"].str.strip()}
                        ).reset_index(drop=True)


def quora_split(df: pd.DataFrame, eval_size: int | float = 0.2, seed: int = 0):
    """Split quora-dev.csv into (train, eval) with no question text in both: connected groups of pairs sharing a
    question go wholly to one side. eval_size: a share (<1) or a number of pairs (>=1, approximate)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = df["sentence1"].str.lower().to_numpy()
    b = df["sentence2"].str.lower().to_numpy()
    texts, idx = np.unique(np.concatenate([a, b]), return_inverse=True)  # one node per distinct question
    n = len(texts)
    _, group = connected_components(coo_matrix((np.ones(len(a)), (idx[:len(a)], idx[len(a):])), shape=(n, n)),
                                    directed=False)
    group = group[idx[:len(a)]]  # each pair's component
    uniq = np.unique(group)
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    target = eval_size * len(df) if eval_size < 1 else eval_size
    sizes = pd.Series(group).value_counts()
    chosen, n = set(), 0
    for g in uniq:
        if n >= target:
            break
        chosen.add(g)
        n += sizes[g]
    is_eval = np.isin(group, list(chosen))
    return df[~is_eval].reset_index(drop=True), df[is_eval].reset_index(drop=True)


def overall_score(sst_acc: float, para_acc: float, sts_r: float) -> float:
    """The leaderboard's overall score: (SST accuracy + PARA accuracy + (STS Pearson r + 1) / 2) / 3."""
    return (sst_acc + para_acc + (sts_r + 1) / 2) / 3


def write_predictions(ids, preds, path, column: str) -> Path:
    """Leaderboard CSV: header `id,Predicted_<column>`, one line per example (the minBERT project's format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"id,Predicted_{column}\n")
        for i, p in zip(ids, preds):
            f.write(f"{i},{p}\n")
    return path



@dataclass
class TaskData:
    """Training or evaluation examples of the three tasks as DataFrames (sst: sentence, y; para/sts: s1, s2, y)."""
    frames: dict

    def sizes(self) -> dict:
        return {t: len(df) for t, df in self.frames.items()}

    def lengths(self) -> dict:
        """Words per example (both sentences of a pair): what a batch's padded length grows with."""
        return {t: (df["sentence"] if t == "sst" else df["s1"] + " " + df["s2"]).str.split().str.len().to_numpy()
                for t, df in self.frames.items()}

    def batch(self, task: str, idx) -> dict:
        df = self.frames[task].iloc[np.asarray(idx)]
        if task == "sst":
            return {"texts": df["sentence"].tolist(), "y": df["y"].to_numpy()}
        return {"s1": df["s1"].tolist(), "s2": df["s2"].tolist(), "y": df["y"].to_numpy()}
