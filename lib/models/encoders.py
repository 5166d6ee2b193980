"""Fine-tuning an encoder for multi-label classification: tokenise once, length-grouped batches with dynamic
padding (never pad-to-max), class-weighted BCE, probabilities out. SDPA attention and bf16 autocast on GPU."""
from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from lib.core import precision, stages
from lib.core.distributed import distributed_map
from lib.models import registry


def create_and_prepare_model(name: str, n_labels: int, dropout: float = -1.0):
    """Tokenizer + sequence-classification model (multi-label) for a registry name or hub id; `dropout` >= 0 sets
    every dropout of its config (registry.dropout_overrides; -1 keeps the checkpoint's)."""
    tok = registry.load_tokenizer(name)
    kw = {"attn_implementation": "sdpa"} if torch.cuda.is_available() else {}
    kw.update(registry.dropout_overrides(name, dropout))
    model = registry.load_model(name, AutoModelForSequenceClassification, num_labels=n_labels,
                              problem_type="multi_label_classification", **kw)
    if tok.pad_token is None:  # decoders and some encoders ship without one; reuse EOS, never resize embeddings
        registry.ensure_pad_token(tok)
        model.config.pad_token_id = tok.pad_token_id
    return tok, model


class Encoded(torch.utils.data.Dataset):
    """Texts tokenised once (truncated to max_length, unpadded) plus optional float labels."""

    def __init__(self, tok, texts, labels=None, max_length: int = 128):
        self.enc = tok(list(texts), truncation=True, max_length=max_length)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.float32)
        self.lengths = [len(x) for x in self.enc["input_ids"]]

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        item = {k: v[i] for k, v in self.enc.items()}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item


def length_grouped_order(lengths, batch_size: int, rng: np.random.Generator, mega: int = 50) -> list:
    """transformers' `trainer_pt_utils.get_length_grouped_indices` (a random permutation cut into mega-batches of
    `mega` batches, each sorted by length, longest first; the longest element of all moved to the front), its torch
    generator seeded from `rng`, so one numpy rng gives one sequence of orders. Returns the flat index order."""
    from transformers.trainer_pt_utils import get_length_grouped_indices
    g = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    return get_length_grouped_indices(list(map(int, lengths)), batch_size, mega_batch_mult=mega, generator=g)


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Batches of similar length in a new random order every epoch: padding then costs little.

    From transformers: the grouping (length_grouped_order), its generator seeded from this sampler's own numpy rng,
    so every epoch (every __iter__) draws a new order and one seed gives one sequence of epochs. Ours: the flat
    order is cut into batches of batch_size (only the last can be smaller) and the batches are shuffled with the
    same rng, since transformers keeps each mega-batch longest first."""

    def __init__(self, lengths, batch_size: int, seed: int = 0, mega: int = 50):
        self.lengths, self.bs, self.mega = np.asarray(lengths), batch_size, mega
        self.rng = np.random.default_rng(seed)

    def __iter__(self):
        if not len(self.lengths):
            return
        idx = length_grouped_order(self.lengths, self.bs, self.rng, self.mega)
        batches = [idx[i:i + self.bs] for i in range(0, len(idx), self.bs)]
        for j in self.rng.permutation(len(batches)):
            yield batches[j]

    def __len__(self):
        return -(-len(self.lengths) // self.bs)


def loader(tok, ds: Encoded, batch_size: int, train: bool, seed: int = 0, pad_to_max: int = 0):
    """DataLoader with dynamic padding; training batches are length-grouped. pad_to_max>0 pads every batch to that
    length (only for the benchmark's comparison)."""
    collate = DataCollatorWithPadding(tok, padding="max_length" if pad_to_max else "longest",
                                      max_length=pad_to_max or None, return_tensors="pt")
    if train:
        return torch.utils.data.DataLoader(ds, batch_sampler=LengthGroupedBatches(ds.lengths, batch_size, seed),
                                           collate_fn=collate)
    order = np.argsort(ds.lengths)  # evaluation: sorted by length, order restored in predict_proba
    return torch.utils.data.DataLoader(torch.utils.data.Subset(ds, order.tolist()), batch_size=batch_size,
                                       collate_fn=collate), order


def bce_loss(pos_weight=None):
    pw = None if pos_weight is None else torch.as_tensor(pos_weight)
    fn = torch.nn.BCEWithLogitsLoss(pos_weight=pw)

    def loss_fn(model, batch):
        batch = {k: v.to(model.device) for k, v in batch.items()}
        labels = batch.pop("labels")
        if fn.pos_weight is not None and fn.pos_weight.device != labels.device:
            fn.pos_weight = fn.pos_weight.to(labels.device)
        return fn(model(**batch).logits.float(), labels)
    return loss_fn


@torch.no_grad()
@stages.timed("predict")
def predict_logits(model, tok, ds: Encoded, batch_size: int = 128) -> np.ndarray:
    model.eval()
    dl, order = loader(tok, ds, batch_size, train=False)

    def logits_of(batch):
        batch = {k: v.to(model.device) for k, v in batch.items() if k != "labels"}
        return model(**batch).logits.float().cpu()
    with precision.inference(model.device):
        out = distributed_map(logits_of, list(dl))  # several processes: each batch on one rank, gathered on all
    logits = torch.cat(out).numpy()
    restored = np.empty_like(logits)
    restored[order] = logits
    return restored


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
