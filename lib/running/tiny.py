"""Tiny mode (LAB_TINY=1): any profile, the gpu one included, at tiny size on CPU.

Caps samples and steps and nothing else: every model, data source and hyper-parameter stays the profile's. A cap
only lowers a value (0, "no cap", becomes the cap). Used by tests/test_gpu_tiny.py to execute the gpu profile on CPU
against a fake hub cache of tiny checkpoints (tests/make_fake_hub.py):

    LAB_TINY=1 HF_HUB_CACHE=<fake hub> HF_HUB_OFFLINE=1 ./run_all.sh --profile gpu
"""
from __future__ import annotations

import os

# per notebook: parameter -> cap (sample counts, pair counts, epochs, optimiser steps, generated tokens); a dict
# parameter's caps are a dict of its keys. CHECKPOINT_EVERY 1: the gpu profile's checkpoints are saved at tiny size
# too, so the save path of every gpu model (4-bit QLoRA included) runs in the tests
CAPS: dict[str, dict] = {
    "01_ffnn": {"TRAINING": {"epochs": 1, "max_steps": 3}, "MAX_TRAIN_SAMPLES": 200, "MAX_EVAL_SAMPLES": 100,
                "MAX_TEST_SAMPLES": 100},
    "02_encoders": {"TRAINING": {"epochs": 1, "max_steps": 2}, "CHECKPOINT_EVERY": 1, "MAX_TRAIN_SAMPLES": 64, "MAX_EVAL_SAMPLES": 48,
                    "MAX_TEST_SAMPLES": 100},
    "03_qlora_decoders": {"TRAINING": {"epochs": 1, "max_steps": 2}, "CHECKPOINT_EVERY": 1, "MAX_TRAIN_SAMPLES": 16, "MAX_EVAL_SAMPLES": 16,
                          "MAX_TEST_SAMPLES": 100, "MAX_NEW_TOKENS": 4},
    "04_cdec": {"TRAINING": {"epochs": 1, "max_steps": 2}, "CHECKPOINT_EVERY": 1, "MAX_TRAIN_PAIRS": 200, "MAX_CANDIDATES": 150,
                "MAX_EVAL_PAIRS": 40,
                "DECODER": {"max_steps": 2, "train_fraction": 0.05, "rescore_dev": 16, "rescore_test": 16}},
    "05_qa": {"TRAINING": {"epochs": 1, "max_steps": 2}, "CHECKPOINT_EVERY": 1, "PROMPT": {"max_steps": 2}, "MAX_TRAIN_SAMPLES": 24,
              "MAX_VAL_SAMPLES": 16, "MAX_EVAL_SAMPLES": 16},
    "06_multitask": {"TRAINING": {"epochs": 1, "max_steps": 2}, "CHECKPOINT_EVERY": 1, "FROZEN": {"epochs": 1},
                     "MAX_TRAIN_SAMPLES": [48, 96, 48], "MAX_EVAL_SAMPLES": 32, "DATA": {"max_test_samples": 64}},
}


def enabled() -> bool:
    return os.environ.get("LAB_TINY", "") not in ("", "0")


def _cap(value, cap):
    if isinstance(cap, dict):  # a dict parameter: its keys capped one by one
        return {**value, **{k: _cap(value[k], c) for k, c in cap.items() if k in value}}
    if isinstance(cap, list):
        return [_cap(v, c) for v, c in zip(value, cap)]
    return cap if not value else min(value, cap)  # 0 means "no cap": the tiny cap applies


def apply(notebook: str, values: dict) -> dict:
    """`values` with the notebook's tiny caps applied when LAB_TINY=1 (unchanged otherwise)."""
    if not enabled():
        return values
    return {**values, **{k: _cap(values[k], c) for k, c in CAPS.get(notebook, {}).items() if k in values}}
