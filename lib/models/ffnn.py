"""The FFNN baseline (emotion study HW5): a mean-pooled embedding bag over learned token embeddings + an MLP."""
from __future__ import annotations

import re
from collections import Counter

import torch
from torch import nn

from lib.core import stages

_TOKEN = re.compile(r"#?\w+|[^\w\s]", re.UNICODE)  # words (hashtags kept whole), single punctuation/emoji


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class Vocab:
    """Token -> id built from training texts only (id 0 = unknown). Optional word bigrams."""

    def __init__(self, texts, min_freq: int = 2, bigrams: bool = True):
        self.bigrams = bigrams
        counts = Counter(t for text in texts for t in self._grams(text))
        self.itos = ["<unk>"] + sorted(t for t, c in counts.items() if c >= min_freq)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def _grams(self, text):
        toks = tokenize(text)
        return toks + ([f"{a} {b}" for a, b in zip(toks, toks[1:])] if self.bigrams else [])

    def __len__(self):
        return len(self.itos)

    def encode(self, text) -> list[int]:
        ids = [self.stoi.get(t, 0) for t in self._grams(text)]
        return ids or [0]


def collate(vocab: Vocab, texts, labels=None):
    """EmbeddingBag inputs (flat ids + offsets) and optional float labels."""
    ids = [vocab.encode(t) for t in texts]
    offsets = torch.tensor([0] + [len(x) for x in ids[:-1]]).cumsum(0)
    flat = torch.tensor([i for x in ids for i in x])
    out = {"ids": flat, "offsets": offsets}
    if labels is not None:
        out["labels"] = torch.as_tensor(labels, dtype=torch.float32)
    return out


class FFNN(nn.Module):
    """EmbeddingBag(mean) -> [Linear -> ReLU -> Dropout] x len(hidden) -> Linear(n_labels)."""

    def __init__(self, vocab_size: int, n_labels: int, emb_dim: int = 128, hidden=(256, 128), dropout: float = 0.3):
        super().__init__()
        self.emb = nn.EmbeddingBag(vocab_size, emb_dim, mode="mean")
        layers, d = [], emb_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        self.mlp = nn.Sequential(nn.Dropout(dropout), *layers, nn.Linear(d, n_labels))

    def forward(self, ids, offsets):
        return self.mlp(self.emb(ids, offsets))


@torch.no_grad()
@stages.timed("predict")
def predict_proba(model, vocab: Vocab, texts, batch_size: int = 256):
    """Sigmoid probabilities (n_texts, n_labels) as a numpy array."""
    model.eval()
    out = []
    for i in range(0, len(texts), batch_size):
        b = collate(vocab, texts[i:i + batch_size])
        out.append(torch.sigmoid(model(b["ids"], b["offsets"])))
    return torch.cat(out).numpy()
