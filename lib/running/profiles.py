"""Profiles: what each notebook's parameters become under `smoke`, `cpu` and `gpu`, and which runs run_all.sh makes.

* smoke: tiny slices, a handful of optimisation steps (tests and CI).
* cpu:   the embedded default: the whole run_all.sh finishes on 2 cores / 24 GB with no GPU in <= 60 minutes.
* gpu:   full data; the studies' own models and hyper-parameters.
A notebook's parameters cell holds the defaults; PRESETS override only what a profile changes, and a value the
user passes explicitly always wins (lib/running/params.py).
"""
from __future__ import annotations

PRESETS: dict[str, dict[str, dict]] = {
    "01_ffnn": {
        "smoke": {"TRAINING": {"epochs": 1, "max_steps": 5}, "MAX_TRAIN_SAMPLES": 400, "MAX_EVAL_SAMPLES": 200},
        "cpu": {},
        "gpu": {},
    },
    "02_encoders": {
        "smoke": {"TRAINING": {"epochs": 1, "max_steps": 3}, "MAX_TRAIN_SAMPLES": 96, "MAX_EVAL_SAMPLES": 64,
                  "BATCH_SIZE": 16},
        # measured here: 3 epochs of linear decay from 5e-5 with sqrt class weights gave validation 0.550 / hold-out
        # 0.520 with the validation F1 still rising at the end (2 epochs, full weights: 0.567 / 0.558); so a
        # one-cycle-like schedule (30% warmup, cosine) peaking at 1e-4, as the emotions issue measured at ~0.567 test
        # dropout off (DROPOUT 0; the same for naive and improved): improved validation 0.576 -> 0.591, hold-out 0.557 ->
        # 0.568, one seed (2026-12-01); no faster here (27-token tweets: the masks are small, unlike 05's 180-token windows)
        "cpu": {"MAX_LENGTH": 64, "CLASS_WEIGHT_POWER": 0.5, "DROPOUT": 0.0,
                "TRAINING": {"epochs": 3, "lr": 0.0001, "scheduler": "cosine", "warmup_ratio": 0.3}},
        "gpu": {"MODEL": "distilroberta-base"},
    },
    "03_qlora_decoders": {
        # smoke still predicts all 3,259 test tweets (a complete submission): that prediction is most of its time
        "smoke": {"TRAINING": {"epochs": 1, "max_steps": 2}, "MAX_TRAIN_SAMPLES": 16, "MAX_EVAL_SAMPLES": 16,
                  "ZERO_SHOT": False,
                  "MAX_NEW_TOKENS": 3, "MAX_LENGTH": 48, "EVAL_BATCH_SIZE": 64},
        # sized to the lab's 60-minute CPU budget. `python -m lib.running.bench decoder` on this 2-core Xeon (AVX-512):
        # float LoRA 197 tokens/s vs 4-bit NF4 142 (0.72x; 0.03x on an AVX2-only EPYC), so the cpu profile trains
        # the float path (LoRA on the same frozen base; QLoRA stays in smoke and gpu) and spends the saving on 2x
        # the tweets; gradient checkpointing off (1.4x faster; 24 GB hold these small models' activations)
        # the 100 steps at lr 2e-4 left Gemma below the FFNN (validation 0.468 vs 0.490); at 5e-4 with the LoRA dropout off
        # (its masks on every linear layer's input cost training 132 -> 102 s): validation 0.527, hold-out 0.525 (2026-12-01)
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
        # the cascade sized to ~10 CPU minutes (measured: scoring ~150 pairs/s, decoder LoRA ~2.4 s a step of 4
        # prompts): the first stage keeps 85% of the dev coreferent pairs (measured: 0.856 of test, 20% of the
        # pairs); sentences clipped to 6 words around each trigger (~50-token pairs); first-stage candidates are
        # ~2:1 negative:positive, so no oversampling; the decoder trains on 120 pairs and re-scores the band.
        # Learning rates: at 5e-5 / 2e-4 the cross-encoder's dev F1 was still rising at its last step and the
        # decoder's band threshold was degenerate, so 1e-4 / 1e-3
        "cpu": {"FIRST_STAGE_RECALL": 0.85, "CONTEXT_WORDS": 6, "MAX_LENGTH": 64, "MAX_TRAIN_PAIRS": 4000,
                "OVERSAMPLE_POS": 1, "BATCH_SIZE": 16, "EVAL_BATCH_SIZE": 256, "MAX_EVAL_PAIRS": 400,
                "TRAINING": {"epochs": 1, "lr": 0.0001, "warmup_ratio": 0.1, "eval_every": 50},
                # decoder trimmed from 60 steps / 150 + 250 re-scored pairs (2026-12-01 full run: 245 s, CoNLL 0.803,
                # identical to the cross-encoder's) to fit the whole profile in 60 minutes
                "DECODER": {"train_fraction": 0.06, "max_steps": 30, "batch_size": 4, "grad_accum": 1, "lr": 0.001,
                            "rescore_dev": 100, "rescore_test": 160, "max_length": 128}},
        "gpu": {"MODEL": "answerdotai/ModernBERT-base", "DECODER": {"model": "Qwen/Qwen2.5-0.5B-Instruct"},
                "EVAL_BATCH_SIZE": 256, "MAX_EVAL_PAIRS": 5000},
    },
    "05_qa": {
        "smoke": {"MAX_TRAIN_SAMPLES": 24, "MAX_VAL_SAMPLES": 16, "MAX_EVAL_SAMPLES": 16, "MAX_LENGTH": 128,
                  "STRIDE": 32, "TRAINING": {"epochs": 1, "max_steps": 2, "grad_accum": 1}, "BATCH_SIZE": 4},
        # measured here: full fine-tuning on 2,500 questions reached validation F1 54.7 after 120 steps of 16
        # windows (~2.5 s a step); 1,500 questions kept the four methods within the lab's CPU budget at dropout 0.1. Prompt
        # tuning's validation F1 was flat after 30 steps (8.5 -> 10.2 at 132; 7.1 at 40, 7.2 at 50), so it stops at 30
        # (~2.5 minutes saved: the study's contrast, prompt tuning barely moving off the untrained model, holds)
        # Measured and rejected: 384-token windows with 24 held-out articles (full F1 34.4), length-grouped
        # training batches (full F1 36.0 vs 43.0 and no faster; the cause not investigated), training only on the
        # windows holding the answer (validation F1 53.3 vs 62.6).
        # Dropout off (DROPOUT 0, LoRA dropout 0): a step of 16 windows 1.8-2.0 s -> 1.1 s (models.dropout_overrides),
        # spent on 2,000 questions instead of 1,500. LoRA on every dense layer (query, key, value and the three
        # output/FFN projections) instead of query/value: held-out F1 35.1 -> 43.0 at 1,500 questions; its cost was
        # the LoRA dropout (2.7 s a step with 0.1, 1.7 s with 0, as query/value) (2026-12-01)
        "cpu": {"MAX_TRAIN_SAMPLES": 2000, "MAX_VAL_SAMPLES": 120, "MAX_EVAL_SAMPLES": 300, "MAX_LENGTH": 192,
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
        # measured here: ~30 training examples/s (batch 32); a warm start shared by the variants (linear probes on
        # the pretrained embeddings) makes ~24 steps per variant enough to learn; the SST probe on all 8,544 SST
        # sentences (~40 s of embedding) instead of the 1,000 the variants train on: probe dev accuracy 0.41 vs
        # 0.33, and every variant's SST 0.42-0.435 instead of 0.29-0.33 (400 dev examples per task); evaluation
        # once per variant on up to 1,200 dev examples per task (all SST and STS dev): no checkpoint is picked on
        # the reported dev set; comparisons: baseline vs round_robin (schedule), round_robin vs cosine (STS head),
        # cosine vs simcse, simcse vs simcse_lora_noffn.
        # The training examples go where fine-tuning moves a score: PARA and STS sit near their warm start (MiniLM's
        # pre-training pairs include Quora duplicates) while SST gains, so [2000, 500, 300] (the same ~3,600 sentences a
        # variant as [1000, 900, 400]) with the encoder at 1e-4: every variant's SST 0.374-0.425 -> 0.423-0.441, the
        # sequential baseline no longer below its warm start, best overall 0.713 -> 0.718, 540 -> 560-583 s (2026-12-01)
        # Encoder dropout off for the task losses (ENCODER_DROPOUT 0; SimCSE's own passes keep their 0.1, models.dropout_set;
        # LoRA dropout 0): training 377 -> 272 s over the five variants, the whole notebook 583 -> 462 s, best overall
        # 0.718 -> 0.7215 (round_robin). Spending the saving on 2,600 SST sentences gave 0.7216 for +39 s: not kept
        "cpu": {"MODEL": "all-MiniLM-L6-v2", "POOLING": "mean", "PAIR_INIT": "cosine", "WARM_START": "all",
                "VARIANTS": ["baseline", "round_robin", "cosine", "simcse", "simcse_lora_noffn"],
                "BATCH_SIZE": 32, "MAX_LENGTH": 64, "MAX_TRAIN_SAMPLES": [2000, 500, 300], "MAX_EVAL_SAMPLES": 1200,
                "TRAINING": {"epochs": 1, "lr": 0.0001}, "LORA": {"lr": 0.001, "dropout": 0.0}, "HEAD_LR": 0.001,
                "SIMCSE": {"batch": 32},
                "DROPOUT": 0.1, "ENCODER_DROPOUT": 0.0},
        "gpu": {},
    },
}

# run_all.sh: per profile, the runs to make: (notebook, run name, parameters beyond the profile's presets).
_NAIVE = {"CLASS_WEIGHTS": False, "THRESHOLDS": "fixed", "FIXED_THRESHOLD": 0.5}  # the study's naive setting
_FFNN_RUNS = [
    ("01_ffnn", "naive", _NAIVE),
    ("01_ffnn", "improved", {}),
]
# improved: a seed ensemble of two (SEEDS 2, +5 min): hold-out 0.568 -> 0.584 at the same validation 0.591 (its blend
# with Gemma 0.573 -> 0.585); each model's own scores are in its report (2026-12-01)
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
                 # 300 validation and hold-out tweets (was 150: 0.323 vs 0.371 on two 150-tweet samples, too noisy to
                 # judge the run by; +~45 s of generation). Labels scored by their first-token probabilities
                 # (LABEL_SCORES "probs"), measured on those tweets, validation cross-fitted / hold-out: 400 training
                 # tweets 0.377 / 0.437 (parsed answers 0.305 / 0.365), 800 tweets 0.438 / 0.487 (answers 0.361 /
                 # 0.379) for +110 s of training; 800 in batches of 16 at lr 7e-4: 0.407 / 0.454, only 13% faster.
                 # The square root of the probabilities (decoders.generative_scores) then lifted 800 tweets' 0.438 /
                 # 0.487 to 0.469 / 0.501. A 12-token cap instead of 16: the same scores, no faster. 600 training
                 # tweets in a full run: 0.411 / 0.455 and no faster as a whole (training 262 s instead of ~305,
                 # prediction 336 s instead of 278 on a slower afternoon), so 800 stay (2026-12-02)
                 {**_GENERATIVE, "MAX_TRAIN_SAMPLES": 800, "MAX_EVAL_SAMPLES": 300, "MAX_NEW_TOKENS": 16,
                  # generating for 128 test tweets, 12 tokens each: batch 16 17.3 s, 32 15.6, 64 12.2, 128 16.0
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
# blends of the emotion runs above (weights and thresholds on validation only): each profile's strongest members that
# validate on the same tweets (fold 0 of the train file); the FFNN validates on the dev file (notebook 01 says why)
# and had weight 0.0 in the cpu blend when it could take part (2026-12-01)
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
# opt-in runs: made only when `run_all.sh --only NOTEBOOK/RUN` names them. The naive runs (no class weights, threshold
# 0.5) of the encoder and decoder families: each re-trains a whole model to show what the FFNN's naive run (kept in
# the plan, 30 s) already shows, and together they would take the profile past its 60 minutes. Measured on this code
# (2026-12-02): minilm-naive validation 0.359, hold-out 0.380 against the improved run's 0.566 / 0.584, 5.0 min;
# gemma-3-270m-naive (2026-12-01) validation 0.391, hold-out 0.424 against 0.500 / 0.525, 4.5 min. The second MiniLM
# seed (+0.016 hold-out, +0.009 for the blend) stays in the plan: it is what lifts the best submission past 0.58.
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
