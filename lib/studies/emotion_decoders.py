"""Notebook 03's steps for either MODE (classifier head or generative answers) on a decoder from lib.models.decoders:
what the training engine needs (TrainingSetup), the zero-shot baseline, and the predictions that become the submission.
These read the notebook's parameters P (the study layer); the decoder mechanics they use take plain arguments."""
from __future__ import annotations

import numpy as np
import torch

from lib.core import stages
from lib.models.decoders import (
    answers_to_matrix,
    float_base,
    float_copy_with_adapter,
    generate_answers,
    pad_sft_batch,
    prompt_parts,
    sft_example,
    sft_loss,
)


class TrainingSetup:
    """What lib.training.train.fit needs for notebook 03's MODE: batches, loss, evaluation, the monitored metric; plus the
    encoded sets (classifier) or SFT examples (generative) and the tokens of one epoch (for tokens/s)."""

    def __init__(self, P, tok, data, labels, pos_weight=None):
        import torch.nn.functional as F

        from lib.evaluation import metrics
        from lib.models import encoders
        self.mode = P.MODE
        self.val_logits = []  # classifier: the validation logits of each evaluation, in history.evals order
        if P.MODE == "classifier":
            named = [("train", data.train), ("val", data.val), ("test", data.test)]
            named += [("holdout", data.holdout)] if data.holdout is not None else []
            self.sets = {n: encoders.Encoded(tok, df["Tweet"], df[labels].to_numpy() if n in ("train", "val") else None,
                                             P.MAX_LENGTH) for n, df in named}
            self.batches = encoders.loader(tok, self.sets["train"], P.BATCH_SIZE, train=True, seed=P.SEED)
            self.loss_fn = encoders.bce_loss(pos_weight)

            def evaluate(m):
                logits = encoders.predict_logits(m, tok, self.sets["val"], P.EVAL_BATCH_SIZE)
                self.val_logits.append(logits)  # predict() reuses the restored evaluation's instead of a second pass
                return {"loss": float(F.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor(data.y_val))),
                        "macro_f1": metrics.macro_f1(data.y_val, logits >= 0)}
            self.monitor, self.direction = "macro_f1", "max"
            self.epoch_tokens = sum(self.sets["train"].lengths)
        else:
            parts = prompt_parts(tok, labels)  # the prompt prefix every tweet shares, then the tweet
            self.train_ex = [sft_example(tok, t, y, labels, parts=parts) for t, y in zip(data.train["Tweet"], data.y_train)]
            val_ex = [sft_example(tok, t, y, labels, parts=parts) for t, y in zip(data.val["Tweet"], data.y_val)]
            g = torch.Generator().manual_seed(P.SEED)
            self.batches = torch.utils.data.DataLoader(self.train_ex, batch_size=P.BATCH_SIZE, shuffle=True, generator=g,
                                                       collate_fn=lambda b: pad_sft_batch(tok, b))
            self.loss_fn = sft_loss(len(parts[0]))  # the shared prefix runs once per batch

            # validation loss over every answer token, whatever the batching: examples sorted by length (little
            # padding) in batches of 32 (measured on 2 cores, SmolLM2 on 300 tweets: 64 unsorted 59 s, 64 sorted 37,
            # 32 sorted 29, 16 sorted 29)
            val_ex = sorted(val_ex, key=lambda e: len(e["input_ids"]))
            n_answer = [sum(t != -100 for t in e["labels"][1:]) for e in val_ex]  # the targets sft_loss averages

            def evaluate(m):
                sums = [float(self.loss_fn(m, pad_sft_batch(tok, val_ex[i:i + 32]))) * sum(n_answer[i:i + 32])
                        for i in range(0, len(val_ex), 32)]
                return {"loss": sum(sums) / sum(n_answer)}
            self.monitor, self.direction = "loss", "min"
            self.epoch_tokens = sum(len(e["input_ids"]) for e in self.train_ex)
        self.evaluate = evaluate

    def restored_val_logits(self, history):
        """The validation logits of the evaluation whose weights train.fit restored (its best), or None when this
        process did not make every evaluation of `history` (another rank's, or a resumed run's)."""
        if len(self.val_logits) != len(history.evals) or not history.best:
            return None
        return self.val_logits[[e["step"] for e in history.evals].index(history.best["step"])]


def generative_scores(P, model, tok, tweets, labels) -> tuple[np.ndarray, np.ndarray, list, dict]:
    """(scores, parsed 0/1 answers, answer texts, parsing statistics) of one generation pass over `tweets`. The scores are what the
    run's thresholds are tuned on: with LABEL_SCORES="probs" each label's highest first-token probability while the
    answer was generated (LabelProbs), with "answers" the parsed answers themselves."""
    answers, probs = generate_answers(model, tok, tweets, labels, P.EVAL_BATCH_SIZE, P.MAX_NEW_TOKENS, scores=True)
    pred, stats = answers_to_matrix(answers, labels)
    # the square root (monotone: what a threshold can separate is unchanged) lifts rare labels' first-token
    # probabilities, often 0.003-0.05, into the threshold grid (0.05-0.95): on the raw probabilities 3 of SmolLM2's 11
    # tuned thresholds sat at the grid's floor of 0.05; with the root none does, and validation cross-fitted / hold-out
    # went 0.438 / 0.487 -> 0.469 / 0.501 (from the cpu run's saved scores, then the same in a fresh full run, 2026-12-02)
    return (np.sqrt(probs.astype(float)) if P.LABEL_SCORES == "probs" else pred.astype(float)), pred, answers, stats


@stages.timed("predict")
def zero_shot(P, tok, model, data, labels) -> tuple[dict, list]:
    """The untuned instruct model on validation (the generative mode's baseline row), scored the way the tuned model
    will be (LABEL_SCORES; probabilities get cross-fitted thresholds, emotion.crossfit_score), plus its parsed answers'
    own macro-F1 and its answers. A model trained in 4/8-bit is scored as the float base its trained adapter is later
    merged into (see predict)."""
    import time

    from lib.evaluation import metrics
    from lib.studies import emotion
    t0 = time.time()
    zs_model = float_base(P.MODEL, P.MODE) if P.QUANTIZATION != "none" else model
    scores, pred, answers, stats = generative_scores(P, zs_model, tok, data.val["Tweet"].tolist(), labels)
    mode = threshold_mode(P)
    return {"macro_f1": emotion.crossfit_score(data.y_val, scores, mode, P.FIXED_THRESHOLD, P.SEED),
            "answers_macro_f1": metrics.macro_f1(data.y_val, pred), "jaccard": metrics.jaccard_accuracy(data.y_val, pred),
            **stats, "seconds": time.time() - t0}, answers


def threshold_mode(P) -> str:
    """How this run's thresholds are chosen: P.THRESHOLDS, except "fixed" for generative LABEL_SCORES "answers"
    (0/1 answers: nothing to tune)."""
    return "fixed" if P.MODE == "generative" and P.LABEL_SCORES == "answers" else P.THRESHOLDS


@stages.timed("predict")
def predict(P, model, tok, data, labels, setup: TrainingSetup, zero_shot_scores: dict | None = None, history=None):
    """Probabilities (classifier) or label scores (generative) for validation, test and hold-out.

    Returns (probs {split: array}, notes, extra metrics, seconds, answers {split: texts} or None). A model trained
    in 4/8-bit predicts from its adapter merged into the float base (bitsandbytes' quantised matmuls are the slower
    ones, on CPU by far); a
    model trained in float has its adapter merged into its own weights first (measured on 2 cores: Gemma-3-270M
    classifier 27.2 -> 30.5 tweets/s, SmolLM2 generation 7.9 -> 9.0 tweets/s, logits within 2e-5, the same
    answers). The classifier's validation logits are those of the training run's restored evaluation (`history`)
    when the predicting model is that very model, instead of a second pass over the validation tweets.
    Generative mode scores each label from one generation pass (generative_scores, LABEL_SCORES); with "answers" the
    scores are the 0/1 answers, scored with fixed thresholds (threshold_mode: pass it to emotion.conclude)."""
    import time

    from lib.models import encoders
    t0 = time.time()
    notes, extra, answers = [], {}, None
    same_model = True
    if P.QUANTIZATION != "none":
        model = float_copy_with_adapter(model, P.MODEL, P.MODE, len(labels), P.out / "adapter")
        notes.append(f"predictions from the LoRA adapter merged into the float base model (trained in {P.QUANTIZATION})")
        same_model = False
    elif P.QUANTIZATION == "none" and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload().eval()
    if P.MODE == "classifier":
        known = setup.restored_val_logits(history) if same_model and history is not None else None
        probs = {n: encoders.sigmoid(known if n == "val" and known is not None
                                     else encoders.predict_logits(model, tok, ds, P.EVAL_BATCH_SIZE))
                 for n, ds in setup.sets.items() if n != "train"}
        extra["predicted_tweets"] = sum(len(p) for n, p in probs.items() if n != "val" or known is None)
        if known is not None:
            notes.append("validation probabilities from the training run's restored evaluation (the same model)")
    else:
        from lib.evaluation import metrics
        probs, stats, answers, parsed = {}, {}, {}, {}
        named = [("val", data.val), ("test", data.test)] + ([("holdout", data.holdout)] if data.holdout is not None else [])
        for n, df in named:
            probs[n], pred, answers[n], stats[n] = generative_scores(P, model, tok, df["Tweet"].tolist(), labels)
            if n != "test":
                parsed[f"{n}_macro_f1"] = metrics.macro_f1(df[labels].to_numpy(int), pred)
        extra["predicted_tweets"] = sum(len(p) for p in probs.values())
        extra["parsing"], extra["answers_as_generated"] = stats, parsed
        if P.LABEL_SCORES != "answers":
            notes.append("each label scored by the square root of the highest probability the tuned model gave its "
                         "first token while generating the answer (thresholds tuned on these, as a classifier's); the parsed answers "
                         "alone (0/1) score macro-F1 " + ", ".join(
                             f"{v:.3f} on {'validation' if k.startswith('val') else 'the hold-out'}" for k, v in parsed.items()))
        if zero_shot_scores is not None:
            extra["zero_shot_validation"] = zero_shot_scores
        notes.append(f"validation answers needing cleaning: {stats['val']['needed_cleaning']} of {stats['val']['answers']}, "
                     f"unknown words dropped: {stats['val']['dropped_words']}")
    return probs, notes, extra, time.time() - t0, answers
