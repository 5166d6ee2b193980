"""SemEval-2018 Task 1 E-c (11 emotions, multi-label tweets): load, validate, write and score submissions.

Files (tab-separated, header `ID Tweet anger ... trust`): 2018-E-c-En-{train,dev,test}.txt in
<DATA_DIR>/semeval2018_ec/. The test file is unlabelled (every label `NONE`, CRLF endings), as on Kaggle.
Run as a command to score a submission:  python -m lib.data.semeval SUBMISSION.csv GOLD.txt
"""
from __future__ import annotations

import csv
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core import paths, stages
from lib.core.errors import LabError, read_text, where

EMOTIONS = ["anger", "anticipation", "disgust", "fear", "joy", "love",
            "optimism", "pessimism", "sadness", "surprise", "trust"]
HEADER = ["ID", "Tweet", *EMOTIONS]
FOLDER = "semeval2018_ec"
FILES = {"train": "2018-E-c-En-train.txt", "dev": "2018-E-c-En-dev.txt", "test": "2018-E-c-En-test.txt"}
TEST_TWEETS = 3259  # tweets in the withheld test file: a complete submission predicts every one
HUB = ("SemEvalWorkshop/sem_eval_2018_task_1", "subtask5.english")  # the hub copy, used only when online
HOW_TO_GET = ("fetch it with `python -m lib.data.download --only semeval` (or `./run_all.sh`, which fetches what its runs "
              "read), download SemEval-2018 Task 1 E-c English (2018-E-c-En-train/dev/test.txt) from the task site "
              f"(competitions.codalab.org/competitions/17751) into that folder, or set DATA_DIR to a folder holding {FOLDER}/")


@dataclass
class Split:
    """One split: a frame with ID, Tweet and the 11 label columns (labels NaN when unlabelled)."""
    name: str
    df: pd.DataFrame
    labelled: bool
    path: str
    dropped: list = field(default_factory=list)  # (line, reason) for rows dropped with on_bad="drop"

    @property
    def y(self) -> np.ndarray:
        return self.df[EMOTIONS].to_numpy(dtype=np.float32)

    @property
    def texts(self) -> list[str]:
        return self.df["Tweet"].tolist()


def parse_file(path: str | Path, labelled: bool | None = None, on_bad: str = "error") -> Split:
    """Read one E-c file, checking every row. on_bad: 'error' (stop at the first bad row) or 'drop' (skip and count).

    Errors cite file and line: wrong header, wrong column count, label not 0/1 (or NONE when unlabelled),
    duplicate ID, empty tweet.
    """
    if on_bad not in ("error", "drop"):
        raise LabError(f"on_bad must be 'error' or 'drop', got {on_bad!r}")
    path = Path(path)
    rows, dropped, seen = [], [], {}
    text = read_text(path, f"a tab-separated E-c file with the header {' '.join(HEADER)}")
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise LabError(f"{where(path, 1)}: empty file, expected the header {' '.join(HEADER)}") from None
        if header != HEADER:
            raise LabError(f"{where(path, 1)}: wrong header {header}; expected exactly {HEADER}")
        for line, cells in enumerate(reader, start=2):
            if not cells:
                continue  # a blank line (e.g. a trailing newline)
            problem = _row_problem(cells, labelled, seen, line)
            if problem:
                if on_bad == "error":
                    raise LabError(f"{where(path, line)}: {problem}")
                dropped.append((line, problem))
                continue
            seen[cells[0]] = line
            rows.append(cells)
    if labelled is None:  # decide from the data: all NONE -> unlabelled
        labelled = any(c != "NONE" for r in rows for c in r[2:])
    df = pd.DataFrame(rows, columns=HEADER)
    df[EMOTIONS] = df[EMOTIONS].replace("NONE", np.nan).astype(float)
    return Split(path.stem, df, labelled, str(path), dropped)


def _row_problem(cells, labelled, seen, line) -> str | None:
    if len(cells) != len(HEADER):
        return f"expected {len(HEADER)} tab-separated columns (ID, Tweet, 11 labels), found {len(cells)}"
    if not cells[0].strip():
        return "empty ID"
    if cells[0] in seen:
        return f"duplicate ID {cells[0]} (first seen on line {seen[cells[0]]})"
    if not cells[1].strip():
        return f"empty tweet text for ID {cells[0]}"
    ok = {"0", "1"} if labelled else ({"NONE"} if labelled is False else {"0", "1", "NONE"})
    for name, v in zip(EMOTIONS, cells[2:]):
        if v.strip() not in ok:
            return f"label {name}={v!r} for ID {cells[0]}; expected one of {sorted(ok)}"
    if labelled is None and len({v == "NONE" for v in cells[2:]}) > 1:
        return f"labels of ID {cells[0]} mix NONE with 0/1"
    return None


@stages.timed("load")
def load(split: str, data_dir: str = "", on_bad: str = "error") -> Split:
    """Load train/dev/test from <data_dir>/semeval2018_ec/, else the hub copy when online, else a clear error."""
    if split not in FILES:
        raise LabError(f"unknown split {split!r}; expected one of {list(FILES)}")
    folder = paths.data_dir(data_dir) / FOLDER
    path = folder / FILES[split]
    if path.exists():
        return parse_file(path, labelled=(split != "test"), on_bad=on_bad)
    hub_error = _hub_unavailable_reason()
    if hub_error is None:
        try:
            return _load_from_hub(split)
        except Exception as e:  # noqa: BLE001 - any hub failure becomes the clear error below
            hub_error = f"{type(e).__name__}: {e}"
    raise LabError(f"missing data file {FILES[split]}: not in {folder}, and the Hugging Face hub copy "
                   f"{HUB[0]} could not be used ({hub_error}). To fix: {HOW_TO_GET}")


def _hub_unavailable_reason() -> str | None:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return "offline mode (HF_HUB_OFFLINE=1; the cpu and smoke profiles set it)"
    return None


def _load_from_hub(split: str) -> Split:
    import datasets
    name = {"train": "train", "dev": "validation", "test": "test"}[split]
    ds = datasets.load_dataset(*HUB, split=name)
    df = ds.to_pandas().rename(columns={"ID": "ID", "Tweet": "Tweet"})
    df = df[HEADER]
    labelled = split != "test"
    df[EMOTIONS] = df[EMOTIONS].astype(float) if labelled else np.nan
    return Split(split, df, labelled, f"hub:{HUB[0]}/{HUB[1]}/{name}")


def write_submission(ids, preds: np.ndarray, path: str | Path) -> Path:
    """submission.csv: `ID` + the 11 emotions as 0/1, header exactly as in the train file, one row per tweet."""
    preds = np.asarray(preds)
    if preds.shape != (len(ids), len(EMOTIONS)):
        raise LabError(f"predictions have shape {preds.shape}; expected ({len(ids)}, {len(EMOTIONS)})")
    df = pd.DataFrame(preds.astype(int), columns=EMOTIONS)
    df.insert(0, "ID", list(ids))
    df.to_csv(path, index=False)
    return Path(path)


def read_submission(path: str | Path) -> pd.DataFrame:
    """Read and check a submission.csv (errors name file and line)."""
    path = Path(path)
    rows = list(csv.reader(io.StringIO(read_text(path, f"a submission.csv with the header ID,{','.join(EMOTIONS)}"),
                                       newline="")))
    if not rows or rows[0] != ["ID", *EMOTIONS]:
        raise LabError(f"{where(path, 1)}: header must be {['ID', *EMOTIONS]}")
    seen = set()
    for line, r in enumerate(rows[1:], start=2):
        if len(r) != 1 + len(EMOTIONS):
            raise LabError(f"{where(path, line)}: expected {1 + len(EMOTIONS)} comma-separated columns, found {len(r)}")
        if any(v not in ("0", "1") for v in r[1:]):
            raise LabError(f"{where(path, line)}: labels must be 0/1, got {r[1:]}")
        if r[0] in seen:
            raise LabError(f"{where(path, line)}: duplicate ID {r[0]}")
        seen.add(r[0])
    df = pd.DataFrame(rows[1:], columns=rows[0])
    df[EMOTIONS] = df[EMOTIONS].astype(int)
    return df


def score_submission(submission: str | Path, gold: str | Path) -> dict:
    """Score a submission.csv against a labelled E-c file (macro/micro F1, Jaccard accuracy, per class)."""
    from lib.evaluation import metrics
    sub = read_submission(submission)
    g = parse_file(gold, labelled=True)
    missing = set(g.df["ID"]) - set(sub["ID"])
    if missing:
        raise LabError(f"{submission}: {len(missing)} gold IDs have no prediction, e.g. {sorted(missing)[:3]}")
    sub = sub.set_index("ID").loc[g.df["ID"]]
    return metrics.multilabel_report(g.y.astype(int), sub[EMOTIONS].to_numpy(), EMOTIONS)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m lib.data.semeval SUBMISSION.csv GOLD.txt", file=sys.stderr)
        return 2
    try:
        rep = score_submission(*argv)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"macro-F1 {rep['macro_f1']:.4f}  micro-F1 {rep['micro_f1']:.4f}  jaccard {rep['jaccard']:.4f}")
    print(pd.DataFrame(rep["per_class"]).T.to_string(float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
