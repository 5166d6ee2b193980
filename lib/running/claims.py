"""Every quantitative finding of the five study reports in ../shared/studies/, each with the study's numbers and the
comparison of the lab's runs that tests it, per profile.

A claim is one of three kinds:
* "direction": arm b's score is higher (direction +1) or lower (-1) than arm a's;
* "equivalent": the two arms score about the same (|b - a| <= margin);
* "value": arm b's score is the study's number (only where the profile runs the study's own model).
An arm is (notebook, run, part): a run folder outputs/<notebook>/<run> and, inside it, a variant (06), a method
(05) or a system (04); emotion runs have no part. `tests[profile]` lists the arms each profile makes; a profile
missing from it does not test the claim (the scorecard names the profiles that do).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from lib.data import sentence_tasks

STUDIES = {
    "001": ("001_c04dfb167ddc6b17.txt", "Emotions (SemEval-2018 E-c): FFNN, encoders, QLoRA decoders", "macro-F1"),
    "000": ("000_a798a2915949fc00.txt", "Cross-document event coreference (ECB+)", "coreferent pairs"),
    "004": ("004_184b4d645fecd4be.txt", "SQuAD v1.1: LoRA vs prompt tuning", "percent"),
    "002": ("002_c14649e405439d20.txt", "Multitask minBERT: schedules, extra data, frozen epochs", "dev overall"),
    "003": ("003_99ce3558b343a85c.txt", "Multitask minBERT: cosine, SimCSE, LoRA", "dev overall"),
}
PROFILES = ("smoke", "cpu", "gpu")
Arm = tuple  # (notebook, run, part)


@dataclass(frozen=True)
class Claim:
    id: str
    study: str                 # key of STUDIES
    text: str                  # the finding, in words
    metric: str                # a key of lib.studies.evidence.METRICS or POINT_METRICS
    kind: str                  # direction | equivalent | value
    study_b: float             # the study's number for arm b (the changed / better-claimed side)
    study_a: float | None = None   # the study's number for arm a (None for a value claim)
    direction: int = +1
    margin: float = 0.0        # equivalent: the largest |b - a| still "about the same"
    tests: dict = field(default_factory=dict, hash=False, compare=False)  # profile -> (arm a | None, arm b)
    note: str = ""

    def study_text(self) -> str:
        a = f"{self.study_a:g} -> " if self.study_a is not None else ""
        return f"{a}{self.study_b:g}"


def _runs(notebook: str, profile: str) -> list[tuple[str, dict]]:
    from lib.running import profiles
    return [(run, p) for nb, run, p in profiles.RUNS[profile] + profiles.OPTIONAL_RUNS.get(profile, [])
            if nb == notebook]


@lru_cache(maxsize=None)
def _resolved(notebook: str, profile: str, run: str) -> dict:
    from lib.core import paths
    from lib.running import params
    if not (paths.NOTEBOOKS / f"{notebook}.ipynb").is_file():  # a lab without this study: nothing of it to test
        return {}
    given = dict(_runs(notebook, profile))[run]
    return dict(params.resolve({"PROFILE": profile, **given}, notebook))


def _within(notebook: str, key: str, a: str, b: str, alternatives=()) -> dict:
    """Tests of a comparison inside one run (06's variants, 05's methods): per profile, the first run whose
    resolved `key` lists both parts (or the first pair of `alternatives` it lists). 'probe' is 06's warm start."""
    out = {}
    for profile in PROFILES:
        for run, _ in _runs(notebook, profile):
            have = set(_resolved(notebook, profile, run).get(key, []))
            if notebook == "06_multitask" and _resolved(notebook, profile, run).get("WARM_START"):
                have.add("probe")
            pair = next(((x, y) for x, y in [(a, b), *alternatives] if {x, y} <= have), None)
            if pair:
                out[profile] = ((notebook, run, pair[0]), (notebook, run, pair[1]))
                break
    return out


def _mt(a, b, alternatives=()):
    return _within("06_multitask", "VARIANTS", a, b, alternatives)


def _qa(a, b):
    return _within("05_qa", "METHODS", a, b)


def _cdec(a, b, profiles_runs=(("smoke", "minilm-smollm"), ("cpu", "minilm-smollm"), ("gpu", "modernbert-qwen"))):
    return {p: (("04_cdec", r, a) if a else None, ("04_cdec", r, b)) for p, r in profiles_runs}


def _em(pairs: dict) -> dict:
    """Emotion tests: {profile: ("NB/run a" | None, "NB/run b")} -> arms."""
    return {p: (tuple(a.split("/")) + ("",) if a else None, tuple(b.split("/")) + ("",)) for p, (a, b) in pairs.items()}


FFNN_N, FFNN_I = "01_ffnn/naive", "01_ffnn/improved"
MINI_N, MINI_I = "02_encoders/minilm-naive", "02_encoders/minilm-improved"
GEMMA_S, SMOL = "03_qlora_decoders/gemma-3-270m-classifier", "03_qlora_decoders/smollm2-135m-generative"
G = {"roberta": "02_encoders/roberta-base-naive", "distilbert": "02_encoders/distilbert-base-uncased",
     "distilroberta": "02_encoders/distilroberta-base", "gemma": "03_qlora_decoders/gemma-2b-classifier",
     "llama": "03_qlora_decoders/llama-3.2-1b-classifier", "stella": "03_qlora_decoders/stella-en-1.5b-classifier",
     "qwen_gen": "03_qlora_decoders/qwen2.5-1.5b-instruct-generative"}


def _ov(sst, para, sts):
    return round(sentence_tasks.overall_score(sst, para, sts), 4)


EMOTION_NOTE = "macro-F1 on the official dev tweets (the hold-out of 02/03; 01 validates on them)"

CLAIMS: list[Claim] = [
    # ---- study 001: emotions (validation macro-F1 as the study reports it)
    Claim("em-ffnn-weights", "001", "class weights and tuned per-class thresholds lift the FFNN over the naive "
          "setting (no weights, threshold 0.5); the study: class weighting 'played a pivotal role'", "macro_f1",
          "direction", 0.452, None, +1,
          tests=_em({p: (FFNN_N, FFNN_I) for p in PROFILES}),
          note="the study's FFNN had no naive/improved pair; its number is the FFNN's validation score"),
    Claim("em-encoder-weights", "001", "class weights and per-class thresholds lift a fine-tuned encoder: RoBERTa-base "
          "without them 0.048, DistilRoBERTa with them 0.559", "macro_f1", "direction", 0.5587, 0.0479, +1,
          tests=_em({"smoke": (MINI_N, MINI_I), "cpu": (MINI_N, MINI_I), "gpu": (G["roberta"], G["distilroberta"])}),
          note="cpu: the naive run is opt-in (./run_all.sh --only 02_encoders/minilm-naive)"),
    Claim("em-encoder-beats-ffnn", "001", "fine-tuned encoders beat the FFNN (DistilRoBERTa 0.559 vs FFNN 0.452)",
          "macro_f1", "direction", 0.5587, 0.45215, +1,
          tests=_em({"smoke": (FFNN_I, MINI_I), "cpu": (FFNN_I, MINI_I), "gpu": (FFNN_I, G["distilroberta"])})),
    Claim("em-decoder-beats-encoder", "001", "QLoRA decoder classifiers beat the encoders (Gemma-2B 0.622 vs "
          "DistilRoBERTa 0.559)", "macro_f1", "direction", 0.6222, 0.5587, +1,
          tests=_em({"smoke": (MINI_I, GEMMA_S), "cpu": (MINI_I, GEMMA_S), "gpu": (G["distilroberta"], G["gemma"])})),
    Claim("em-classifier-beats-generative", "001", "decoders with a classifier head beat generative instruct "
          "decoders (Gemma-2B 0.622 vs Llama-3.2-3B-it 0.593 and Qwen2.5-1.5B 0.434)", "macro_f1", "direction",
          0.6222, 0.4341, +1,
          tests=_em({"smoke": (SMOL, GEMMA_S), "cpu": (SMOL, GEMMA_S), "gpu": (G["qwen_gen"], G["gemma"])})),
    Claim("em-perclass-thresholds", "001", "per-class thresholds with class weights beat one global threshold "
          "(DistilBERT at 0.4: 0.466; DistilRoBERTa per class: 0.559)", "macro_f1", "direction", 0.5587, 0.4658,
          +1, tests=_em({"gpu": (G["distilbert"], G["distilroberta"])}),
          note="two encoders as in the study: the model changes with the thresholds"),
    Claim("em-llama-equals-gemma", "001", "Llama-3.2-1B scores as Gemma-2B (0.6217 vs 0.6222)", "macro_f1",
          "equivalent", 0.6217, 0.6222, margin=0.02, tests=_em({"gpu": (G["gemma"], G["llama"])})),
    Claim("em-ffnn-value", "001", "the FFNN's validation macro-F1 is 0.452", "macro_f1", "value", 0.45215,
          tests=_em({p: (None, FFNN_I) for p in PROFILES}),
          note="every profile trains the same TF-IDF FFNN (smoke on a slice of the tweets)"),
    *[Claim(f"em-{k}-value", "001", f"{name}: validation macro-F1 {v:g}", "macro_f1", "value", v,
            tests=_em({"gpu": (None, G[k])}), note="the study's validation split differs (70/30 or a 10-fold fold)")
      for k, name, v in [("roberta", "RoBERTa-base without class weights", 0.0479),
                         ("distilbert", "DistilBERT, one threshold 0.4", 0.4658),
                         ("distilroberta", "DistilRoBERTa, class weights and per-class thresholds", 0.5587),
                         ("gemma", "Gemma-2B QLoRA classifier", 0.6222), ("llama", "Llama-3.2-1B QLoRA classifier", 0.6217),
                         ("stella", "stella_en_1.5B_v5 LoRA classifier", 0.6191),
                         ("qwen_gen", "Qwen2.5-1.5B generative", 0.4341)]],

    # ---- study 000: event coreference, test pairs (cross-encoder vs the decoder)
    Claim("cdec-f1", "000", "the cross-encoder beats the instruct decoder on coreferent-pair F1 (ModernBERT 0.742 vs "
          "Qwen2.5-0.5B 0.594)", "coref_f1", "direction", 0.742, 0.594, +1,
          tests=_cdec("decoder cascade", "cross-encoder"),
          note="the lab's decoder re-scores only the cross-encoder's uncertain band (the cascade)"),
    Claim("cdec-recall", "000", "the cross-encoder finds more coreferent pairs (recall 0.654 vs 0.464)",
          "coref_recall", "direction", 0.654, 0.464, +1, tests=_cdec("decoder cascade", "cross-encoder")),
    Claim("cdec-precision", "000", "both models are similarly precise on coreferent pairs (0.858 vs 0.828)",
          "coref_precision", "equivalent", 0.858, 0.828, margin=0.05, tests=_cdec("decoder cascade", "cross-encoder")),
    Claim("cdec-accuracy", "000", "the cross-encoder is more accurate over all pairs (95.9% vs 94.3%)", "accuracy",
          "direction", 0.959, 0.943, +1, tests=_cdec("decoder cascade", "cross-encoder")),
    Claim("cdec-modernbert-value", "000", "ModernBERT's coreferent-pair F1 is 0.742", "coref_f1", "value", 0.742,
          tests=_cdec(None, "cross-encoder", (("gpu", "modernbert-qwen"),)),
          note="the study's 42,953 test pairs are its own; the lab's pairs are every cross-document pair of a sub-topic"),
    Claim("cdec-less-data", "000", "the decoder trained on 10% of the oversampled data beat the one trained on 50% "
          "(redundant data hurts)", "coref_f1", "direction", 0.594, None, +1, tests={},
          note="no profile trains the decoder on two data fractions"),

    # ---- study 004: SQuAD v1.1 (percent)
    Claim("qa-lora-beats-prompt-f1", "004", "LoRA beats prompt tuning on F1 (32.6 vs 1.91)", "f1", "direction", 32.6,
          1.91, +1, tests=_qa("prompt", "lora")),
    Claim("qa-lora-beats-prompt-em", "004", "LoRA beats prompt tuning on exact match (24.0 vs 0.0)", "em",
          "direction", 24.0, 0.0, +1, tests=_qa("prompt", "lora")),
    Claim("qa-lora-beats-pretrained", "004", "LoRA lifts the pretrained model's F1 (0.89 -> 32.6)", "f1",
          "direction", 32.6, 0.89, +1, tests=_qa("pretrained", "lora")),
    Claim("qa-prompt-near-pretrained", "004", "prompt tuning stays near the pretrained model (F1 0.89 -> 1.91)",
          "f1", "equivalent", 1.91, 0.89, margin=5.0, tests=_qa("pretrained", "prompt"),
          note="margin: 5 F1 points"),
    Claim("qa-lora-value", "004", "bert-tiny-finetuned-squadv2 with LoRA reaches F1 32.6", "f1", "value", 32.6,
          tests={"gpu": (None, ("05_qa", "bert-tiny-squadv2", "lora"))}),

    # ---- study 002: multitask minBERT (dev overall = (SST + PARA + (r + 1) / 2) / 3 of the study's rows)
    Claim("mt-round-robin", "002", "round-robin multitask training beats task-by-task (average 0.58 vs 0.56)",
          "overall", "direction", _ov(.53, .76, .46), _ov(.50, .75, .44), +1, tests=_mt("baseline", "round_robin")),
    Claim("mt-round-robin-norm", "002", "normalising round robin's gradients by task size hurts (0.55 vs 0.58)",
          "overall", "direction", _ov(.51, .73, .40), _ov(.53, .76, .46), -1,
          tests=_mt("round_robin", "round_robin_norm")),
    Claim("mt-shared-layers", "002", "sharing the PARA/STS projection layers hurts (0.55 vs 0.56)", "overall",
          "direction", _ov(.50, .73, .42), _ov(.50, .75, .44), -1, tests=_mt("baseline", "shared_proj")),
    Claim("mt-extra-polar", "002", "extra data (CFIMDB polar + SICK) helps (0.59 vs 0.56)", "overall", "direction",
          _ov(.50, .75, .52), _ov(.50, .75, .44), +1, tests=_mt("baseline", "extra_polar")),
    Claim("mt-extra-nonpolar", "002", "extra data (CFIMDB non-polar + SICK) helps (0.59 vs 0.56)", "overall",
          "direction", _ov(.50, .75, .52), _ov(.50, .75, .44), +1, tests=_mt("baseline", "extra_nonpolar")),
    Claim("mt-extra-sts", "002", "SICK lifts STS (STS 0.44 -> 0.52)", "sts_r", "direction", .52, .44, +1,
          tests=_mt("baseline", "extra_polar")),
    Claim("mt-frozen", "002", "extra epochs with the encoder frozen help (0.58 vs 0.56)", "overall", "direction",
          _ov(.52, .75, .46), _ov(.50, .75, .44), +1, tests=_mt("baseline", "frozen")),
    Claim("mt-final", "002", "the final combination beats the baseline (test 0.610 average; dev 0.56 baseline)",
          "overall", "direction", _ov(.510, .788, .531), _ov(.50, .75, .44), +1, tests=_mt("baseline", "final_002")),
    *[Claim(f"mt-{k}", "002", text, "overall", "direction", b, a, d, tests={}, note="no profile varies this")
      for k, text, b, a, d in [("epochs", "20 epochs instead of 10 help (0.59 vs 0.56)", _ov(.50, .77, .48),
                                _ov(.50, .75, .44), +1),
                               ("batch8", "batch size 8 hurts (0.54 vs 0.56)", _ov(.45, .72, .43), _ov(.50, .75, .44), -1),
                               ("cut-para", "cutting PARA training to 8,000 rows hurts every task (0.50 vs 0.56)",
                                _ov(.50, .63, .38), _ov(.50, .75, .44), -1)]],

    # ---- study 003: cosine similarity, SimCSE, LoRA
    Claim("mt-finetune-beats-probe", "003", "multitask fine-tuning beats training the last linear layers only "
          "(0.471 -> 0.662)", "overall", "direction", 0.662, 0.471, +1, tests=_mt("probe", "cosine"),
          note="the lab's last-linear-layer baseline is the warm start: linear probes on the pretrained encoder"),
    Claim("mt-cosine-sts", "003", "a cosine STS head scores below the regression head on STS (0.329 vs 0.427)",
          "sts_r", "direction", 0.329, 0.427, -1, tests=_mt("round_robin", "cosine")),
    Claim("mt-simcse", "003", "unsupervised SimCSE beats cosine alone (overall 0.703 vs 0.662)", "overall",
          "direction", 0.703, 0.662, +1, tests=_mt("cosine", "simcse")),
    Claim("mt-simcse-sts", "003", "SimCSE lifts STS (r 0.586 vs 0.329)", "sts_r", "direction", 0.586, 0.329, +1,
          tests=_mt("cosine", "simcse")),
    Claim("mt-simcse-sst", "003", "SimCSE (+FFN, full model) lowers SST accuracy (0.482 vs cosine's 0.517)",
          "sst_acc", "direction", 0.482, 0.517, -1, tests=_mt("cosine", "simcse_full")),
    Claim("mt-para-flat", "003", "PARA accuracy is about the same across fine-tuned strategies (0.800-0.808)",
          "para_acc", "equivalent", 0.800, 0.805, margin=0.02, tests=_mt("cosine", "simcse")),
    Claim("mt-lora-close", "003", "LoRA scores within 1 point of full fine-tuning (0.727 vs 0.732)", "overall",
          "equivalent", 0.727, 0.732, margin=0.01,
          tests=_mt("simcse_full", "simcse_lora", [("simcse", "simcse_lora_noffn")])),
    Claim("mt-lora-time", "003", "LoRA cuts training time by 21% (11.01 h vs 14.47 h)", "train_seconds",
          "direction", 11.01, 14.47, -1, tests=_mt("simcse_full", "simcse_lora", [("simcse", "simcse_lora_noffn")]),
          note="one timing per variant: no interval; a change under 10% is too close to call"),
]

BY_ID = {c.id: c for c in CLAIMS}


def profiles_testing(claim: Claim) -> list[str]:
    return [p for p in PROFILES if p in claim.tests]


def variant_pairs() -> list[tuple]:
    """The studies' comparisons between two variants of one 06 run: the claims of lib.running.claims (their one home) whose
    tests, on any profile, compare two variants (the warm start 'probe' and timings are left to the scorecard).
    Returns (claim, variant a, variant b) in registry order."""
    out = []
    for c in CLAIMS:
        if c.metric not in ("overall", "sst_acc", "para_acc", "sts_r"):
            continue
        pairs = {(a[2], b[2]) for a, b in c.tests.values() if a and a[0] == "06_multitask" and a[2] != "probe"}
        out += [(c, a, b) for a, b in sorted(pairs)]
    return out
