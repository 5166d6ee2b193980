"""Profiles: what each notebook's parameters become under `smoke`, `cpu` and `gpu`, and which runs run_all.sh makes.

* smoke: tiny slices, a handful of optimisation steps (tests and CI).
* cpu:   the embedded default: the whole run_all.sh finishes on 2 cores / 24 GB with no GPU in <= 60 minutes.
* gpu:   full data; the studies' own models and hyper-parameters.
A notebook's parameters cell holds the defaults; PRESETS override only what a profile changes, and a value the
user passes explicitly always wins (lib/running/params.py).
"""
from __future__ import annotations

# smoke predicts this many of the 3,259 withheld test tweets (the same ones in 01-03, so 07 can blend them): an
# incomplete submission.csv, saying so; predicting all of them was two thirds of the smoke run's time (03's decoders)
SMOKE_TEST_TWEETS = 200

# what training and prediction compute in (lib.core.precision): auto is bf16 autocast where the hardware multiplies
# bf16 natively (a CPU with AVX512-BF16 or AMX: 1.4-2x faster steps and predictions), else fp32; smoke stays fp32
# so its pinned metrics hold on every machine. LAB_PRECISION (auto | bf16 | fp32) overrides it for every profile.
PRECISION = {"smoke": "fp32", "cpu": "auto", "gpu": "auto"}


def compute_precision(profile: str) -> str:
    """The compute precision mode of a (resolved) profile: $LAB_PRECISION, else PRECISION."""
    import os
    return os.environ.get("LAB_PRECISION") or PRECISION.get(profile, "fp32")

PRESETS: dict[str, dict[str, dict]] = {
    "01_ffnn": {
        "smoke": {"TRAINING": {"epochs": 1, "max_steps": 5}, "MAX_TRAIN_SAMPLES": 400, "MAX_EVAL_SAMPLES": 200,
                  "MAX_TEST_SAMPLES": SMOKE_TEST_TWEETS},
        "cpu": {},
        "gpu": {},
    },
    "02_encoders": {
        "smoke": {"TRAINING": {"epochs": 1, "max_steps": 3}, "MAX_TRAIN_SAMPLES": 96, "MAX_EVAL_SAMPLES": 64,
                  "MAX_TEST_SAMPLES": SMOKE_TEST_TWEETS, "BATCH_SIZE": 16},
        # a one-cycle-like schedule (30% warmup, cosine) peaking at 1e-4 and square-root class weights: the validation
        # F1 was still rising at the end of linear decay from 5e-5; dropout off scores higher here (docs/experiments.md: the measurements)
        "cpu": {"MAX_LENGTH": 64, "CLASS_WEIGHT_POWER": 0.5, "DROPOUT": 0.0,
                "TRAINING": {"epochs": 3, "lr": 0.0001, "scheduler": "cosine", "warmup_ratio": 0.3}},
        "gpu": {"MODEL": "distilroberta-base"},
    },
    "03_qlora_decoders": {
        "smoke": {"TRAINING": {"epochs": 1, "max_steps": 2}, "MAX_TRAIN_SAMPLES": 16, "MAX_EVAL_SAMPLES": 16,
                  "MAX_TEST_SAMPLES": SMOKE_TEST_TWEETS, "ZERO_SHOT": False,
                  "MAX_NEW_TOKENS": 3, "MAX_LENGTH": 48, "EVAL_BATCH_SIZE": 64},
        # LoRA on the float base (4-bit NF4 matmuls are slower on CPU; QLoRA stays in smoke and gpu), gradient
        # checkpointing off (these small models' activations fit 24 GB), lr 5e-4 with LoRA dropout off (docs/experiments.md: the measurements)
        "cpu": {"TRAINING": {"epochs": 1, "lr": 0.0005}, "MAX_TRAIN_SAMPLES": 800, "MAX_LENGTH": 64,
                "LORA": {"dropout": 0.0},
                "GRADIENT_CHECKPOINTING": False, "QUANTIZATION": "none"},
        "gpu": {"MODEL": "google/gemma-2b", "BATCH_SIZE": 16},
    },
    "04_cdec": {
        "smoke": {"FIRST_STAGE_RECALL": 0.5, "MAX_CANDIDATES": 300, "CONTEXT_WORDS": 6, "MAX_LENGTH": 64,
                  "MAX_TRAIN_PAIRS": 200, "OVERSAMPLE_POS": 1, "BATCH_SIZE": 8,
                  "TRAINING": {"epochs": 1, "max_steps": 3, "eval_every": 0}, "MAX_EVAL_PAIRS": 40,
                  "DECODER": {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "train_fraction": 0.05,
                              "rescore_dev": 16, "rescore_test": 16, "max_length": 160}},
        # the cascade sized to ~10 CPU minutes: the first stage keeps 85% of the dev coreferent pairs, sentences
        # clipped to 6 words around each trigger, no oversampling (candidates are ~2:1), lr 1e-4 / 1e-3 (docs/experiments.md: the measurements)
        "cpu": {"FIRST_STAGE_RECALL": 0.85, "CONTEXT_WORDS": 6, "MAX_LENGTH": 64, "MAX_TRAIN_PAIRS": 4000,
                "OVERSAMPLE_POS": 1, "BATCH_SIZE": 16, "EVAL_BATCH_SIZE": 256, "MAX_EVAL_PAIRS": 400,
                "TRAINING": {"epochs": 1, "lr": 0.0001, "warmup_ratio": 0.1, "eval_every": 50},
                # the decoder's 30 steps and re-scored pairs: its share of the 60-minute budget
                "DECODER": {"train_fraction": 0.06, "max_steps": 30, "batch_size": 4, "grad_accum": 1, "lr": 0.001,
                            "rescore_dev": 100, "rescore_test": 160, "max_length": 128}},
        "gpu": {"MODEL": "answerdotai/ModernBERT-base", "DECODER": {"model": "Qwen/Qwen2.5-0.5B-Instruct"},
                "EVAL_BATCH_SIZE": 256, "MAX_EVAL_PAIRS": 5000},
    },
    "05_qa": {
        "smoke": {"MAX_TRAIN_SAMPLES": 24, "MAX_VAL_SAMPLES": 16, "MAX_EVAL_SAMPLES": 16, "MAX_LENGTH": 128,
                  "STRIDE": 32, "TRAINING": {"epochs": 1, "max_steps": 2, "grad_accum": 1}, "BATCH_SIZE": 4},
        # 3,200 questions, prompt tuning stopped at 30 steps (its validation F1 is flat after), dropout off (a step
        # ~1.7x faster), LoRA on every dense layer; 1,000 of the held-out articles' 1,909 questions reported (F1's
        # standard error ~1.4 points instead of ~2.6 on 300; predicting costs seconds) (docs/experiments.md: the measurements)
        "cpu": {"MAX_TRAIN_SAMPLES": 3200, "MAX_VAL_SAMPLES": 120, "MAX_EVAL_SAMPLES": 1000, "MAX_LENGTH": 192,
                "STRIDE": 64, "BATCH_SIZE": 16,
                "TRAINING": {"epochs": 1, "grad_accum": 1, "eval_every": 60, "lr": 0.0002},
                "DROPOUT": 0.0, "LORA": {"targets": ["query", "key", "value", "dense"], "dropout": 0.0},
                "PROMPT": {"max_steps": 30}},
        "gpu": {"DATA_SOURCE": "hub", "MODEL": "mrm8488/bert-tiny-finetuned-squadv2", "MAX_VAL_SAMPLES": 2000,
                "TRAINING": {"eval_every": 2000}},
    },
    "07_emotion_ensemble": {  # blends finished runs of 01-03 (listed in RUNS below); nothing to shrink
        "smoke": {},
        "cpu": {},
        "gpu": {"WEIGHT_STEP": 0.2},  # four members: 56 weight vectors instead of 286
    },
    "06_multitask": {
        "smoke": {"MODEL": "all-MiniLM-L6-v2", "POOLING": "mean", "VARIANTS": ["baseline", "final_002", "simcse_lora"],
                  "TRAINING": {"epochs": 1, "max_steps": 2}, "BATCH_SIZE": 8, "MAX_LENGTH": 48,
                  "MAX_TRAIN_SAMPLES": [48, 96, 48], "MAX_EVAL_SAMPLES": 32, "FROZEN": {"epochs": 1},
                  "SIMCSE": {"batch": 8}, "DATA": {"max_test_samples": 64},
                  "HEAD_LR": 0.001, "PAIR_INIT": "cosine", "WARM_START": "capped"},
        # a warm start shared by the variants (linear probes; the SST probe on all 8,544 sentences) makes ~24 steps a
        # variant enough; training examples where fine-tuning moves a score (SST), encoder dropout off in the task
        # losses (SimCSE keeps its 0.1) (docs/experiments.md: the measurements)
        "cpu": {"MODEL": "all-MiniLM-L6-v2", "POOLING": "mean", "PAIR_INIT": "cosine", "WARM_START": "all",
                "VARIANTS": ["baseline", "round_robin", "cosine", "simcse", "simcse_lora_noffn"],
                "BATCH_SIZE": 32, "MAX_LENGTH": 64, "MAX_TRAIN_SAMPLES": [2000, 500, 300], "MAX_EVAL_SAMPLES": 1200,
                "TRAINING": {"epochs": 1, "lr": 0.0001}, "LORA": {"lr": 0.001, "dropout": 0.0}, "HEAD_LR": 0.001,
                "SIMCSE": {"batch": 32},
                "DROPOUT": 0.1, "ENCODER_DROPOUT": 0.0},
        "gpu": {},
    },
}

# gpu runs take hours: they checkpoint every this many optimiser steps, so a killed run resumes (RESUME); cpu runs take
# minutes and save none (a checkpoint of a full fine-tune costs seconds and disk)
GPU_CHECKPOINT_EVERY = 200
for _nb in ("02_encoders", "03_qlora_decoders", "04_cdec", "05_qa", "06_multitask"):
    PRESETS[_nb]["gpu"].setdefault("CHECKPOINT_EVERY", GPU_CHECKPOINT_EVERY)

# run_all.sh: per profile, the runs to make: (notebook, run name, parameters beyond the profile's presets).
_NAIVE = {"CLASS_WEIGHTS": False, "THRESHOLDS": "fixed", "FIXED_THRESHOLD": 0.5}  # the study's naive setting
_FFNN_RUNS = [
    ("01_ffnn", "naive", _NAIVE),
    ("01_ffnn", "improved", {}),
]
# improved: a seed ensemble of two (SEEDS 2): the average of two models lifts the hold-out (docs/experiments.md: the measurements)
_ENCODER_NAIVE = ("02_encoders", "minilm-naive", _NAIVE)  # opt-in on cpu (OPTIONAL_RUNS says why); smoke runs it
_ENCODER_CPU = [("02_encoders", "minilm-improved", {"SEEDS": 2})]
_ENCODER_GPU = [("02_encoders", "roberta-base-naive", {"MODEL": "roberta-base", **_NAIVE}),
                ("02_encoders", "distilbert-base-uncased", {"MODEL": "distilbert-base-uncased", "THRESHOLDS": "global"}),
                ("02_encoders", "distilroberta-base", {"MODEL": "distilroberta-base"}),
                ("02_encoders", "modernbert-base", {"MODEL": "answerdotai/ModernBERT-base"})]
_GENERATIVE = {"MODE": "generative", "MODEL": "SmolLM2-135M-Instruct", "TRAINING": {"lr": 0.0005}}
# generative examples are ~4x longer (prompt + answer, ~115 tokens) but two thirds of that is the prompt prefix every
# tweet shares, which training runs once per batch (decoders.sft_loss)
_DECODER_CPU = [("03_qlora_decoders", "gemma-3-270m-classifier", {}),
                ("03_qlora_decoders", "smollm2-135m-generative",
                 # 800 training tweets, 300 validation and hold-out tweets (150 were too noisy to judge the run by), labels
                 # scored by the square root of their first-token probabilities (docs/experiments.md: the measurements)
                 {**_GENERATIVE, "MAX_TRAIN_SAMPLES": 800, "MAX_EVAL_SAMPLES": 300, "MAX_NEW_TOKENS": 16,
                  # the fastest generation batch measured on 2 cores
                  "EVAL_BATCH_SIZE": 64})]
# (the classifier predicts every validation and hold-out tweet: cheap forward passes, and an ensemble needs them all)
_DECODER_SMOKE = [("03_qlora_decoders", "gemma-3-270m-classifier", {}),
                  ("03_qlora_decoders", "smollm2-135m-generative", _GENERATIVE)]
_DECODER_GPU = [("03_qlora_decoders", "gemma-2b-classifier", {}),
                ("03_qlora_decoders", "llama-3.2-1b-classifier", {"MODEL": "meta-llama/Llama-3.2-1B"}),
                ("03_qlora_decoders", "qwen2.5-1.5b-classifier", {"MODEL": "Qwen/Qwen2.5-1.5B"}),
                ("03_qlora_decoders", "qwen2.5-1.5b-instruct-generative",
                 {**_GENERATIVE, "MODEL": "Qwen/Qwen2.5-1.5B-Instruct", "TRAINING": {"lr": 0.0002}}),
                ("03_qlora_decoders", "stella-en-1.5b-classifier", {"MODEL": "dunzhang/stella_en_1.5B_v5"})]
# blends of the emotion runs above (weights and thresholds on validation only): each profile's strongest members
# that validate on the same tweets (fold 0 of the train file); the FFNN validates on the dev file (notebook 01 says why)
_ENSEMBLE_CPU = [("07_emotion_ensemble", "blend", {"MEMBERS": ["02_encoders/minilm-improved",
                                                               "03_qlora_decoders/gemma-3-270m-classifier"]})]
_ENSEMBLE_GPU = [("07_emotion_ensemble", "blend", {"MEMBERS": [
    "02_encoders/distilroberta-base", "02_encoders/modernbert-base",
    "03_qlora_decoders/gemma-2b-classifier", "03_qlora_decoders/llama-3.2-1b-classifier"]})]
_CDEC_CPU = [("04_cdec", "minilm-smollm", {})]
_CDEC_GPU = [("04_cdec", "modernbert-qwen", {}),
             ("04_cdec", "modernbert-focal", {"LOSS": "focal", "RUN_DECODER": False})]
_QA_CPU = [("05_qa", "minilm", {})]
_QA_GPU = [("05_qa", "bert-tiny-squadv2", {}),
           ("05_qa", "bert-tiny", {"MODEL": "prajjwal1/bert-tiny", "TRAINING": {"lr": 0.0003}}),
           ("05_qa", "bert-base-uncased", {"MODEL": "bert-base-uncased", "BATCH_SIZE": 32, "LORA": {"lr": 0.0005},
                                           "TRAINING": {"grad_accum": 1, "epochs": 2, "lr": 3e-05, "eval_every": 1000}})]
# opt-in runs: made only when `run_all.sh --only NOTEBOOK/RUN` names them. The naive runs of the encoder and decoder
# families re-train a whole model to show what the FFNN's naive run (kept in the plan, 30 s) already shows; together
# they would take the profile past its 60 minutes (docs/experiments.md: the measurements)
OPTIONAL_RUNS: dict[str, list[tuple[str, str, dict]]] = {
    "cpu": [_ENCODER_NAIVE, ("03_qlora_decoders", "gemma-3-270m-naive", _NAIVE)],
}
RUNS: dict[str, list[tuple[str, str, dict]]] = {
    "smoke": [*_FFNN_RUNS, _ENCODER_NAIVE, *_ENCODER_CPU, *_DECODER_SMOKE, *_ENSEMBLE_CPU, *_CDEC_CPU, *_QA_CPU, ("06_multitask", "smoke", {})],
    "cpu": [*_FFNN_RUNS, *_ENCODER_CPU, *_DECODER_CPU, *_ENSEMBLE_CPU, *_CDEC_CPU, *_QA_CPU,
            ("06_multitask", "minilm-variants", {})],
    "gpu": [*_FFNN_RUNS, *_ENCODER_GPU, *_DECODER_GPU, *_ENSEMBLE_GPU, *_CDEC_GPU, *_QA_GPU, ("06_multitask", "bert-base-all", {})],
}


def presets(notebook: str, profile: str) -> dict:
    if profile not in ("smoke", "cpu", "gpu"):
        from lib.core.errors import LabError
        raise LabError(f"PROFILE={profile!r}: expected auto | smoke | cpu | gpu")
    return dict(PRESETS.get(notebook, {}).get(profile, {}))


def resolve_profile(profile: str) -> str:
    """`auto` -> `gpu` where CUDA is available, else `cpu`; any other profile name unchanged."""
    if profile != "auto":
        return profile
    try:
        import torch
        return "gpu" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"
