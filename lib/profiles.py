"""Profiles: what each notebook's parameters become under `smoke`, `cpu` and `gpu`, and which runs run_all.sh makes.

* smoke: tiny slices, a handful of optimisation steps (tests and CI).
* cpu:   the embedded default: the whole run_all.sh finishes on 2 cores / 24 GB with no GPU in <= 60 minutes.
* gpu:   full data; the studies' own models and hyper-parameters.
A notebook's parameters cell holds the defaults; PRESETS override only what a profile changes, and a value the
user passes explicitly always wins (lib/params.py).
"""
from __future__ import annotations

PRESETS: dict[str, dict[str, dict]] = {
    "01_ffnn": {
        "smoke": {"EPOCHS": 1, "MAX_STEPS": 5, "MAX_TRAIN_SAMPLES": 400, "MAX_EVAL_SAMPLES": 200},
        "cpu": {},
        "gpu": {},
    },
    "02_encoders": {
        "smoke": {"EPOCHS": 1, "MAX_STEPS": 3, "MAX_TRAIN_SAMPLES": 96, "MAX_EVAL_SAMPLES": 64, "BATCH_SIZE": 16},
        "cpu": {"EPOCHS": 2, "MAX_LENGTH": 64},  # 2 epochs fit the lab's 60-minute CPU budget (see the report)
        "gpu": {"MODEL": "distilroberta-base"},
    },
}

# run_all.sh: per profile, the runs to make: (notebook, run name, parameters beyond the profile's presets).
_NAIVE = {"CLASS_WEIGHTS": False, "THRESHOLDS": "fixed", "FIXED_THRESHOLD": 0.5}  # the study's naive setting
_FFNN_RUNS = [
    ("01_ffnn", "naive", _NAIVE),
    ("01_ffnn", "improved", {}),
]
_ENCODER_CPU = [("02_encoders", "minilm-naive", _NAIVE), ("02_encoders", "minilm-improved", {})]
_ENCODER_GPU = [("02_encoders", "roberta-base-naive", {"MODEL": "roberta-base", **_NAIVE}),
                ("02_encoders", "distilbert-base-uncased", {"MODEL": "distilbert-base-uncased", "THRESHOLDS": "global"}),
                ("02_encoders", "distilroberta-base", {"MODEL": "distilroberta-base"}),
                ("02_encoders", "modernbert-base", {"MODEL": "answerdotai/ModernBERT-base"})]
RUNS: dict[str, list[tuple[str, str, dict]]] = {
    "smoke": [*_FFNN_RUNS, *_ENCODER_CPU],
    "cpu": [*_FFNN_RUNS, *_ENCODER_CPU],
    "gpu": [*_FFNN_RUNS, *_ENCODER_GPU],
}


def presets(notebook: str, profile: str) -> dict:
    if profile not in ("smoke", "cpu", "gpu"):
        from lib.errors import LabError
        raise LabError(f"PROFILE={profile!r}: expected auto | smoke | cpu | gpu")
    return dict(PRESETS.get(notebook, {}).get(profile, {}))
