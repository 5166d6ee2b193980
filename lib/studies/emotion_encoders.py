"""Notebooks 01 and 02's training step: a fresh model trained on one split of the emotion data, its probabilities for
validation, test and hold-out. Both plug into lib.studies.emotion's cross_validate / seed_ensemble as
`fit_predict(d, seed)` (functools.partial binds the notebook's parameters P)."""
from __future__ import annotations

import torch

from lib.evaluation import metrics
from lib.studies import emotion
from lib.training.config import train_model


def ffnn_fit_predict(P, d: emotion.Data, seed: int):
    """Notebook 01: a fresh vocabulary (MIN_FREQ, BIGRAMS) and FFNN (EMB_DIM, HIDDEN, DROPOUT) trained on d.train
    (the TRAINING dict, BATCH_SIZE; best epoch by validation macro-F1 at 0.5,
    batches shuffled by `seed`). Returns (validation, test, hold-out or None) probabilities and the History."""
    from lib.models import ffnn
    vocab = ffnn.Vocab(d.train["Tweet"], min_freq=P.MIN_FREQ, bigrams=P.BIGRAMS)
    model = ffnn.FFNN(len(vocab), len(emotion.EMOTIONS), P.EMB_DIM, P.HIDDEN, P.DROPOUT)
    pos_weight = emotion.class_weights(P, d.y_train)
    loss = torch.nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else torch.tensor(pos_weight))
    print(f"vocabulary {len(vocab):,} entries; {sum(p.numel() for p in model.parameters()):,} parameters")
    g = torch.Generator().manual_seed(seed)
    batches = torch.utils.data.DataLoader(list(zip(d.train["Tweet"], d.y_train)), batch_size=P.BATCH_SIZE,
                                          shuffle=True, generator=g,
                                          collate_fn=lambda b: ffnn.collate(vocab, [t for t, _ in b], [y for _, y in b]))

    def loss_fn(m, b):
        return loss(m(b["ids"], b["offsets"]), b["labels"])

    def evaluate(m):
        probs = ffnn.predict_proba(m, vocab, d.val["Tweet"].tolist(), P.EVAL_BATCH_SIZE)
        logits = torch.logit(torch.tensor(probs).clamp(1e-6, 1 - 1e-6))
        return {"loss": float(loss(logits, torch.tensor(d.y_val))),
                "macro_f1": metrics.macro_f1(d.y_val, probs >= 0.5)}

    history = train_model(model, batches, loss_fn, evaluate, P.TRAINING, monitor="macro_f1", clip_norm=0)
    probs = {name: ffnn.predict_proba(model, vocab, df["Tweet"].tolist(), P.EVAL_BATCH_SIZE)
             for name, df in _scored_sets(d)}
    return probs["val"], probs["test"], probs.get("holdout"), history


def encoder_fit_predict(P, d: emotion.Data, seed: int, sizes: dict | None = None):
    """Notebook 02: a fresh encoder classifier (MODEL, DROPOUT) trained on d.train (the TRAINING dict,
    BATCH_SIZE, MAX_LENGTH; checkpoint by validation
    macro-F1 at 0.5, batches shuffled by `seed`); `sizes` (when given) receives the parameter counts. Returns
    (validation, test, hold-out or None) probabilities and the History."""
    from lib.models import encoders, registry
    from lib.training import train
    labels = emotion.EMOTIONS
    tok, model = encoders.create_and_prepare_model(P.MODEL, len(labels), P.DROPOUT)
    model.to(train.device())
    sets = {name: encoders.Encoded(tok, df["Tweet"], df[labels].to_numpy() if name in ("train", "val") else None,
                                   P.MAX_LENGTH)
            for name, df in [("train", d.train)] + _scored_sets(d)}
    size = registry.count_parameters(model)
    if sizes is not None:
        sizes.update(size)
    print(f"{P.MODEL}: {size['total']:,} parameters, all trained; mean tokens per training tweet "
          f"{sum(sets['train'].lengths) / len(sets['train']):.1f}")
    pos_weight = emotion.class_weights(P, d.y_train)
    loss_fn = encoders.bce_loss(pos_weight)

    def evaluate(m):
        logits = encoders.predict_logits(m, tok, sets["val"], P.EVAL_BATCH_SIZE)
        t = torch.tensor(logits)
        w = None if pos_weight is None else torch.tensor(pos_weight)
        return {"loss": float(torch.nn.functional.binary_cross_entropy_with_logits(t, torch.tensor(d.y_val),
                                                                                   pos_weight=w)),
                "macro_f1": metrics.macro_f1(d.y_val, logits >= 0)}

    history = train_model(model, encoders.loader(tok, sets["train"], P.BATCH_SIZE, train=True, seed=seed),
                          loss_fn, evaluate, P.TRAINING, monitor="macro_f1")
    print(f"trained {history.optimizer_steps} steps in {history.train_seconds:.0f}s; best at step "
          f"{history.best.get('step')}")
    probs = {name: encoders.sigmoid(encoders.predict_logits(model, tok, ds, P.EVAL_BATCH_SIZE))
             for name, ds in sets.items() if name != "train"}
    return probs["val"], probs["test"], probs.get("holdout"), history


def _scored_sets(d: emotion.Data) -> list:
    """(name, DataFrame) of the sets a model predicts: validation, test and, when there is one, the hold-out."""
    return [("val", d.val), ("test", d.test)] + ([("holdout", d.holdout)] if d.holdout is not None else [])
