"""Ranges and cross-parameter rules (lib/running/param_rules.py), checked when the parameters resolve, before anything trains;
each message quotes the parameter's own comment from the notebook's parameters cell."""
import pytest

from lib.core import paths
from lib.core.errors import LabError
from lib.running import param_rules, params, profiles

NOTEBOOKS = sorted(p.stem for p in paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _comment(notebook, name):
    return params.comments(notebook)[name]


@pytest.mark.parametrize("notebook, given, names, expected", [
    # a cap below 0 (a pandas error deep in the data loading before)
    ("01_ffnn", {"MAX_TRAIN_SAMPLES": -1}, ["MAX_TRAIN_SAMPLES"], "0 or more"),
    ("06_multitask", {"MAX_TRAIN_SAMPLES": [0, -5, 0]}, ["MAX_TRAIN_SAMPLES"], "0 or more"),
    ("04_cdec", {"DECODER": {"max_steps": -2}}, ["DECODER.max_steps"], "0 or more"),
    # the validating fold must exist
    ("02_encoders", {"FOLD": 10, "N_SPLITS": 10}, ["FOLD", "N_SPLITS", "SPLIT"], "0 <= FOLD < N_SPLITS"),
    # blend weights: 0 divided by zero, 0.3 silently became 1/3
    ("07_emotion_ensemble", {"WEIGHT_STEP": 0.0}, ["WEIGHT_STEP"], "1 / WEIGHT_STEP a whole number"),
    ("07_emotion_ensemble", {"WEIGHT_STEP": 0.3}, ["WEIGHT_STEP"], "1 / WEIGHT_STEP a whole number"),
    ("07_emotion_ensemble", {"MEMBERS": []}, ["MEMBERS"], "at least one finished run"),
    # a typo in a list of methods / variants (found only after the earlier ones trained)
    ("05_qa", {"METHODS": ["pretrained", "full", "lroa"]}, ["METHODS"],
     "a non-empty list of pretrained, full, lora, prompt, each at most once; unknown: 'lroa' (did you mean 'lora'?)"),
    ("05_qa", {"METHODS": []}, ["METHODS"], "a non-empty list of pretrained"),
    ("06_multitask", {"VARIANTS": ["baseline", "simsce"]}, ["VARIANTS"], "unknown: 'simsce' (did you mean 'simcse'?)"),
    # 05's window overlap must be shorter than the window (the tokenizer's bare ValueError before)
    ("05_qa", {"PROFILE": "gpu", "MAX_LENGTH": 128}, ["STRIDE", "MAX_LENGTH"], "STRIDE below MAX_LENGTH"),
    ("04_cdec", {"DECODER": {"train_fraction": 0.0}}, ["DECODER.train_fraction"], "0 < train_fraction <= 1"),
    ("03_qlora_decoders", {"LORA": {"r": 0}}, ["LORA.r"], "at least 1"),
    ("01_ffnn", {"SEEDS": 2, "CV_FOLDS": 3, "SPLIT": "kfold"}, ["SEEDS", "CV_FOLDS"], "seed ensemble"),
])
def test_broken_rule_stops_before_training_quoting_the_comments(notebook, given, names, expected):
    given = {"PROFILE": "cpu", **given}
    with pytest.raises(LabError) as e:
        params.resolve(given, notebook)
    msg = str(e.value)
    assert msg.startswith(f"notebook {notebook}: parameter {names[0]}=")
    assert f"expected {expected}" in msg or expected in msg
    for n in names:
        if _comment(notebook, n):
            assert _comment(notebook, n) in msg, (n, msg)


def test_stride_rule_names_both_values_under_the_gpu_profile():
    gpu = profiles.presets("05_qa", "gpu")
    defaults, _ = params.parameters_cell("05_qa")
    assert gpu.get("STRIDE", defaults["STRIDE"]) == 128  # the case the issue reports
    with pytest.raises(LabError, match=r"parameter STRIDE=128, MAX_LENGTH=128: expected STRIDE below MAX_LENGTH"):
        params.resolve({"PROFILE": "gpu", "MAX_LENGTH": 128}, "05_qa")
    assert params.resolve({"PROFILE": "gpu", "MAX_LENGTH": 129}, "05_qa").STRIDE == 128


def test_valid_edges_pass():
    assert params.resolve({"PROFILE": "cpu", "WEIGHT_STEP": 0.25}, "07_emotion_ensemble").WEIGHT_STEP == 0.25
    assert params.resolve({"PROFILE": "cpu", "WEIGHT_STEP": 1}, "07_emotion_ensemble").WEIGHT_STEP == 1
    assert params.resolve({"PROFILE": "cpu", "FOLD": 9, "N_SPLITS": 10}, "02_encoders").FOLD == 9
    assert params.resolve({"PROFILE": "cpu", "SPLIT": "dev", "FOLD": 10, "N_SPLITS": 10}, "02_encoders")  # unused
    assert params.resolve({"PROFILE": "cpu", "METHODS": ["lora"]}, "05_qa").METHODS == ["lora"]
    assert params.resolve({"PROFILE": "cpu", "DROPOUT": -1.0}, "02_encoders").DROPOUT == -1.0


def test_every_rule_in_the_table_applies_somewhere():
    """A rule whose names a notebook lacks is skipped: a misspelt name in the table would silently disable it."""
    defaults = {nb: params.parameters_cell(nb)[0] for nb in NOTEBOOKS}
    for nb, rules in param_rules.RULES.items():
        assert nb in defaults, nb
        assert all(r in param_rules.rules_for(nb, defaults[nb]) for r in rules), nb
    for r in param_rules.COMMON:
        assert any(r in param_rules.rules_for(nb, d) for nb, d in defaults.items()), r.names


def test_every_notebook_default_and_profile_run_keeps_the_rules():
    for nb in NOTEBOOKS:
        defaults, _ = params.parameters_cell(nb)
        assert not param_rules.broken(nb, defaults, defaults), nb
    for profile, runs in {**profiles.RUNS, "cpu-optional": profiles.OPTIONAL_RUNS["cpu"]}.items():
        for nb, _, extra in runs:
            params.resolve({"PROFILE": profile.split("-")[0], **extra}, nb)


def test_methods_and_variants_come_from_the_study_code():
    from lib.models import qa
    from lib.studies import multitask
    assert param_rules.METHODS() == list(qa.METHODS)
    assert param_rules.VARIANTS() == list(multitask.VARIANTS)


def test_qa_window_must_hold_the_longest_question_and_the_overlap():
    """STRIDE < MAX_LENGTH is checked from the parameters; whether a window also holds the longest question is
    checked on the data, before any method trains (the tokenizer panicked with a Rust backtrace before)."""
    from lib.models import qa, registry
    tok = registry.load_tokenizer("all-MiniLM-L6-v2")
    ex = [{"id": "1", "title": "t", "question": "what is the name of the thing " * 4, "context": "word " * 400,
           "answers": {"text": ["word"], "answer_start": [0]}}]  # a 28-token question
    assert qa.prepare_train_features(tok, ex, 128, 96)  # 128 - 28 - 3 special = 97 context tokens > 96
    with pytest.raises(LabError, match=r"STRIDE=97, MAX_LENGTH=128: the longest question \(28 tokens: 'what is.*"
                                       r"leaves 97 context tokens.*raise MAX_LENGTH to at least 129"):
        qa.prepare_train_features(tok, ex, 128, 97)
