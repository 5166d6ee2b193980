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
}

# run_all.sh: per profile, the runs to make: (notebook, run name, parameters beyond the profile's presets).
_FFNN_RUNS = [
    ("01_ffnn", "naive", {"CLASS_WEIGHTS": False, "THRESHOLDS": "fixed", "FIXED_THRESHOLD": 0.5}),
    ("01_ffnn", "improved", {}),
]
RUNS: dict[str, list[tuple[str, str, dict]]] = {
    "smoke": [*_FFNN_RUNS],
    "cpu": [*_FFNN_RUNS],
    "gpu": [*_FFNN_RUNS],
}


def presets(notebook: str, profile: str) -> dict:
    if profile not in ("smoke", "cpu", "gpu"):
        from lib.errors import LabError
        raise LabError(f"PROFILE={profile!r}: expected auto | smoke | cpu | gpu")
    return dict(PRESETS.get(notebook, {}).get(profile, {}))
