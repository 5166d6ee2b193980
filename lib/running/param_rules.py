"""Ranges and cross-parameter rules of the notebooks' parameters, one table, checked by lib.running.params.resolve on the
resolved values (profile and LAB_TINY applied) before anything loads or trains.

A rule names the parameters it reads (`NAME`, or `NAME.key` for a key of a dict parameter), a test on their values
in that order, and what a valid value is. `COMMON` rules apply to every notebook that has all their names;
`RULES[notebook]` holds a notebook's own. A broken rule stops the run with a LabError that quotes each parameter's
comment from the notebook's parameters cell. Besides the table, every `MAX_*` parameter and `max_*` key (a cap, a
length, a step count; 0 means "no cap" where the comment says so) must be 0 or more (`caps`).
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
from pathlib import Path
from typing import Callable, NamedTuple

from lib.core.errors import LabError


class Rule(NamedTuple):
    names: tuple[str, ...]                # parameters read: NAME or NAME.key
    ok: Callable[..., bool]               # their values, in the order of `names` -> valid?
    expected: str | Callable[..., str]    # what a valid value is (the message says it); a callable gets the values


def rule(names: str, ok: Callable[..., bool], expected: str | Callable[..., str]) -> Rule:
    """A Rule over the space-separated `names`."""
    return Rule(tuple(names.split()), ok, expected)


def at_least(lo):
    return lambda v: v >= lo


def above(lo):
    return lambda v: v > lo


def share(v) -> bool:
    """A share of something: 0 to 1."""
    return 0 <= v <= 1


def dropout(v) -> bool:
    """A dropout probability: 0 <= p < 1."""
    return 0 <= v < 1


def dropout_or_own(v) -> bool:
    """-1 (the checkpoint's own dropout) or a dropout probability."""
    return v == -1 or dropout(v)


def names_from(module: str, attr: str) -> Callable[[], list]:
    """The names a study module defines in `attr = (...)` or `attr = {name: ...}` (a tuple's items, a dict's keys),
    read from its source when the rule is checked: the runner resolves parameters too, and importing the study
    (torch, transformers) would cost it seconds a run."""
    def names():
        tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text(encoding="utf-8"))
        value = next((n.value for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                      and attr in [t.id for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                                   if isinstance(t, ast.Name)]), None)
        if value is None:  # a study module renamed or split: say where the rule looked
            raise LabError(f"{module} defines no {attr} = (...) at top level; the parameter rules read it from there")
        if isinstance(value, ast.Dict):
            return [ast.literal_eval(k) for k in value.keys]
        return list(ast.literal_eval(value))
    return names


def each_known(known: Callable[[], list]):
    """A non-empty list without repeats whose every entry is one of `known()`."""
    return lambda v: bool(v) and len(set(v)) == len(v) and all(x in known() for x in v)


def known_entries(known: Callable[[], list]) -> Callable[[list], str]:
    """What each_known expects, naming the unknown entries with their closest known names."""
    def text(v):
        names = known()
        bad = [f"{x!r}" + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(str(x), names, 1))
                           else "") for x in v if x not in names]
        return (f"a non-empty list of {', '.join(names)}, each at most once"
                + (f"; unknown: {', '.join(bad)}" if bad else ""))
    return text


def divides_one(step) -> bool:
    """0 < step <= 1 with 1 / step a whole number: the blend's weights are multiples of `step` summing to 1."""
    return 0 < step <= 1 and abs(1 / step - round(1 / step)) < 1e-9


METHODS = names_from("lib.models.qa", "METHODS")
VARIANTS = names_from("lib.studies.multitask", "VARIANTS")

def bounded(ok: Callable[..., bool], expected: str, names: str) -> list[Rule]:
    """The same range for each of the space-separated `names` (one rule each)."""
    return [rule(n, ok, expected) for n in names.split()]


AT_LEAST_1, NON_NEGATIVE, POSITIVE = (at_least(1), "at least 1"), (at_least(0), "0 or more"), (above(0), "above 0")

COMMON: list[Rule] = [
    rule("SEED", lambda v: 0 <= v < 2 ** 32, "between 0 and 2**32 - 1 (NumPy's seed range)"),
    *bounded(*AT_LEAST_1, "BATCH_SIZE EVAL_BATCH_SIZE TRAINING.epochs LORA.r"),
    *bounded(at_least(1), "at least 1 token", "MAX_LENGTH MAX_NEW_TOKENS"),
    *bounded(share, "between 0 and 1", "FIXED_THRESHOLD TRAINING.warmup_ratio"),
    rule("N_SPLITS", at_least(2), "at least 2"),
    rule("FOLD N_SPLITS SPLIT", lambda f, n, s: s != "kfold" or 0 <= f < n,
         "0 <= FOLD < N_SPLITS: one of the N_SPLITS folds (numbered from 0) validates"),
    rule("CV_FOLDS N_SPLITS SPLIT", lambda k, n, s: k == 0 or (s == "kfold" and 2 <= k <= n),
         "0 (one model), or 2 <= CV_FOLDS <= N_SPLITS with SPLIT 'kfold'"),
    rule("SEEDS CV_FOLDS", lambda s, k: s == 1 or (s > 1 and k == 0),
         "1, or more than 1 with CV_FOLDS 0 (a seed ensemble on one split)"),
    rule("CHECKPOINT_EVERY", at_least(0), "0 (no checkpoints) or more optimiser steps between checkpoints"),
    *bounded(*POSITIVE, "TRAINING.lr LORA.alpha LORA.lr"),
    *bounded(*NON_NEGATIVE, "TRAINING.weight_decay TRAINING.patience TRAINING.eval_every"),
    rule("LORA.dropout", dropout, "0 <= dropout < 1"),
    rule("LORA.targets", bool, "at least one layer name"),
]

RULES: dict[str, list[Rule]] = {
    "01_ffnn": [
        rule("DROPOUT", dropout, "0 <= DROPOUT < 1"),
        *bounded(*AT_LEAST_1, "EMB_DIM MIN_FREQ"),
        rule("HIDDEN", lambda v: all(isinstance(h, int) and h >= 1 for h in v), "layer sizes of at least 1"),
    ],
    "02_encoders": [
        rule("DROPOUT", dropout_or_own, "-1 or 0 <= DROPOUT < 1"),
        rule("CLASS_WEIGHT_POWER", *NON_NEGATIVE),
    ],
    "03_qlora_decoders": [],
    "04_cdec": [
        *bounded(*AT_LEAST_1, "OVERSAMPLE_POS DECODER.lora_r DECODER.batch_size DECODER.grad_accum"),
        *bounded(*NON_NEGATIVE, "NEG_RATIO FOCAL_GAMMA CONTEXT_WORDS DECODER.rescore_dev DECODER.rescore_test"),
        rule("FIRST_STAGE_RECALL", share, "between 0 and 1"),
        rule("DECODER.lr", *POSITIVE),
        rule("DECODER.train_fraction", lambda v: 0 < v <= 1, "0 < train_fraction <= 1"),
        rule("DECODER.max_length", at_least(1), "at least 1 token"),
    ],
    "05_qa": [
        rule("METHODS", each_known(METHODS), known_entries(METHODS)),
        rule("STRIDE MAX_LENGTH", lambda s, m: s < m,
             "STRIDE below MAX_LENGTH: consecutive windows overlap by STRIDE tokens of a MAX_LENGTH-token window"),
        *bounded(at_least(1), "at least 1 article", "ARTICLES.eval ARTICLES.val"),
        *bounded(*AT_LEAST_1, "SPANS.n_best TRAINING.grad_accum PROMPT.virtual_tokens"),
        rule("SPANS.max_answer_length", at_least(1), "at least 1 token"),
        *bounded(*NON_NEGATIVE, "STRIDE N_WORST"),
        rule("DROPOUT", dropout_or_own, "-1 or 0 <= DROPOUT < 1"),
        rule("PROMPT.lr", *POSITIVE),
    ],
    "06_multitask": [
        rule("VARIANTS", each_known(VARIANTS), known_entries(VARIANTS)),
        rule("MAX_TRAIN_SAMPLES", lambda v: len(v) == 3, "three caps: SST, PARA, STS"),
        rule("DATA.quora_eval_size", above(0), "above 0: a share (below 1) or a number of pairs"),
        rule("DROPOUT", dropout, "0 <= DROPOUT < 1"),
        rule("SIMCSE.dropout", dropout, "0 <= dropout < 1"),
        rule("ENCODER_DROPOUT", dropout_or_own, "-1 or 0 <= ENCODER_DROPOUT < 1"),
        *bounded(*NON_NEGATIVE, "HEADS.proj_dim EVAL.n_errors HEAD_LR FROZEN.epochs SIMCSE.weight"),
        rule("EVAL.batch_size", *AT_LEAST_1),
        *bounded(*POSITIVE, "FROZEN.lr SIMCSE.temperature"),
        rule("SIMCSE.batch", at_least(2), "at least 2 (in-batch negatives)"),
    ],
    "07_emotion_ensemble": [
        rule("MEMBERS", lambda v: bool(v) and len(set(v)) == len(v),
             "at least one finished run, each named once"),
        rule("MEMBERS", lambda v: all(isinstance(m, str) and len(m.strip("/").split("/")) == 2 for m in v),
             "runs named notebook/run, e.g. 02_encoders/minilm-improved"),
        rule("WEIGHT_STEP", divides_one, "0 < WEIGHT_STEP <= 1 with 1 / WEIGHT_STEP a whole number (0.1, 0.2, 0.25, "
                                         "0.5, ...): the weights are multiples of it summing to 1"),
    ],
}


def caps(defaults: dict) -> list[Rule]:
    """0 or more for every MAX_* parameter (a number or a list of numbers) and every max_* key of a dict parameter."""
    out = []
    for name, default in defaults.items():
        if name.startswith("MAX_") and isinstance(default, (int, float, list)):
            out.append(rule(name, lambda v: all(x >= 0 for x in (v if isinstance(v, list) else [v])), "0 or more"))
        if isinstance(default, dict):
            out += [rule(f"{name}.{k}", at_least(0), "0 or more") for k, kv in default.items()
                    if k.startswith("max_") and isinstance(kv, (int, float))]
    return out


def rules_for(notebook: str, defaults: dict) -> list[Rule]:
    """Every rule that applies to `notebook` (one whose names all exist in its parameters)."""
    def known(r):
        return all(n.partition(".")[0] in defaults and (not n.partition(".")[2] or n.partition(".")[2] in
                                                         defaults[n.partition(".")[0]]) for n in r.names)
    return [r for r in caps(defaults) + COMMON + RULES.get(notebook, []) if known(r)]


def value(values: dict, name: str):
    head, _, key = name.partition(".")
    return values[head][key] if key else values[head]


def holds(r: Rule, values: dict) -> bool:
    try:
        return bool(r.ok(*(value(values, n) for n in r.names)))
    except TypeError:  # e.g. a string inside a list of numbers: not a valid value either
        return False


def broken(notebook: str, values: dict, defaults: dict) -> list[Rule]:
    """The rules `values` (a notebook's resolved parameters) break, in table order; caps first."""
    return [r for r in rules_for(notebook, defaults) if not holds(r, values)]
