"""Extractive QA models: offset-mapping preprocessing, the span loss and logits, the four methods' models
(pretrained, full fine-tuning, LoRA, prompt tuning) and a sentence embedder for the embedding-similarity score.

Preprocessing follows Hugging Face's `run_qa.py`: a long context is cut into several *features* of at most
`max_length` tokens (question + a window of the context), consecutive windows overlapping by `stride` tokens; the
tokenizer's offset mapping ties every context token back to its characters, so a gold answer (characters) becomes
start/end token positions, or (0, 0) = the [CLS] token when the answer is not inside that window. The spans are
read back by lib/evaluation/qa_postprocess.py.
"""
from __future__ import annotations

import numpy as np
import torch

from lib.core import precision, stages
from lib.core.distributed import distributed_map
from lib.core.errors import LabError

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # the keys of a feature the model takes


def _tokenize(tok, examples, max_length, stride):
    if not getattr(tok, "is_fast", False):
        raise LabError("extractive QA preprocessing needs a fast tokenizer (offset mappings)")
    pad_right = tok.padding_side == "right"
    q = [e["question"].lstrip() for e in examples]
    c = [e["context"] for e in examples]
    _check_window_room(tok, q, max_length, stride)
    return tok(q if pad_right else c, c if pad_right else q, truncation="only_second" if pad_right else "only_first",
               max_length=max_length, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
               padding=False)


def _check_window_room(tok, questions, max_length, stride):
    """Each window holds the whole question, the special tokens and a slice of context longer than the overlap
    STRIDE (else the tokenizer panics): a LabError naming the longest question otherwise."""
    if not questions:
        return
    lengths = [len(ids) for ids in tok(questions, add_special_tokens=False)["input_ids"]]
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    room = max_length - lengths[longest] - tok.num_special_tokens_to_add(pair=True)
    if stride >= room:
        raise LabError(f"STRIDE={stride}, MAX_LENGTH={max_length}: the longest question ({lengths[longest]} tokens: "
                       f"{questions[longest][:80]!r}) leaves {max(room, 0)} context tokens a window, and the overlap "
                       f"STRIDE must be below that: lower STRIDE or raise MAX_LENGTH to at least "
                       f"{max_length - room + stride + 1}")


def prepare_train_features(tok, examples, max_length: int = 384, stride: int = 128) -> list[dict]:
    """Tokenise question + context into overlapping windows; label each window with the first gold answer's
    start/end token positions, or (0, 0) (the [CLS] token) when the answer is not wholly inside the window."""
    enc = _tokenize(tok, examples, max_length, stride)
    feats = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ex = examples[enc["overflow_to_sample_mapping"][i]]
        seq = enc.sequence_ids(i)
        ctx_id = 1 if tok.padding_side == "right" else 0
        s_char = ex["answers"]["answer_start"][0]
        e_char = s_char + len(ex["answers"]["text"][0])
        ts = 0
        while seq[ts] != ctx_id:
            ts += 1
        te = len(enc["input_ids"][i]) - 1
        while seq[te] != ctx_id:
            te -= 1
        if not (offsets[ts][0] <= s_char and offsets[te][1] >= e_char):
            start = end = 0
        else:
            while ts < len(offsets) and seq[ts] == ctx_id and offsets[ts][0] <= s_char:
                ts += 1
            start = ts - 1
            while seq[te] == ctx_id and offsets[te][1] >= e_char:
                te -= 1
            end = te + 1
        f = {k: enc[k][i] for k in MODEL_INPUTS if k in enc}
        f.update(start_positions=start, end_positions=end, example_id=ex["id"],
                 offset_mapping=[o if seq[k] == ctx_id else None for k, o in enumerate(offsets)])
        feats.append(f)
    return feats


def collate(tok, feats) -> dict:
    """Pad a list of features to the longest one -> tensors (model inputs + start/end positions).

    The padding is transformers' DataCollatorWithPadding (the tokenizer's pad id; attention mask and token type ids
    padded with 0), applied to the model inputs only: a feature's other keys (offset mapping, example id) are not
    tensors. Padding goes on the right whatever the tokenizer's padding side, because the start/end positions and
    predict_logits' slices index the unpadded tokens."""
    from transformers import DataCollatorWithPadding

    from lib.models.registry import right_padding
    tok = right_padding(tok)
    keys = [k for k in MODEL_INPUTS if k in feats[0]]
    pad = DataCollatorWithPadding(tok, padding="longest", return_tensors="pt")
    b = dict(pad([{k: f[k] for k in keys} for f in feats]))
    b["start_positions"] = torch.tensor([f["start_positions"] for f in feats])
    b["end_positions"] = torch.tensor([f["end_positions"] for f in feats])
    return b


def loader(tok, feats, batch_size: int, shuffle: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(feats, batch_size=batch_size, shuffle=shuffle, generator=g,
                                       collate_fn=lambda b: collate(tok, b))


def qa_logits(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, end) logits over the batch's own tokens. Prompt tuning prepends virtual tokens and peft passes the
    logits through unchanged, so any extra leading positions are dropped here: every method is scored alike."""
    dev = next(model.parameters()).device
    inputs = {k: v.to(dev) for k, v in batch.items() if k in MODEL_INPUTS}
    out = model(**inputs)
    n = inputs["input_ids"].shape[1]
    return out.start_logits[:, -n:].float(), out.end_logits[:, -n:].float()


def span_loss(model, batch) -> torch.Tensor:
    """Mean of the start and end cross-entropies (as BertForQuestionAnswering computes it), padding masked out."""
    return span_loss_from_logits(*qa_logits(model, batch), batch)


def span_loss_from_logits(s, e, batch) -> torch.Tensor:
    """The span loss of already computed (start, end) logits: evaluation scores and losses from one forward pass."""
    mask = batch["attention_mask"].to(s.device) == 0
    s, e = s.masked_fill(mask, -1e4), e.masked_fill(mask, -1e4)
    ce = torch.nn.functional.cross_entropy
    return (ce(s, batch["start_positions"].to(s.device)) + ce(e, batch["end_positions"].to(s.device))) / 2


@torch.no_grad()
@stages.timed("predict")
def predict_logits(model, tok, feats, batch_size: int = 64) -> tuple[list, list, float]:
    """Per feature: start and end logits (numpy, unpadded); and the mean span loss (from the same forward pass)."""
    was = model.training
    model.eval()
    starts, ends, losses = [], [], []
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))  # length-sorted: less padding
    res = {}

    def batch_logits(idx):
        b = collate(tok, [feats[i] for i in idx])
        s, e = qa_logits(model, b)  # one forward pass per batch: the loss reuses these logits
        lens = [len(feats[i]["input_ids"]) for i in idx]
        return (float(span_loss_from_logits(s, e, b)) * len(idx),
                [(s[j, :n].cpu().numpy(), e[j, :n].cpu().numpy()) for j, n in enumerate(lens)])
    batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    with precision.inference(next(model.parameters()).device):
        done = distributed_map(batch_logits, batches)  # several processes: spread
    for idx, (loss, per) in zip(batches, done):
        losses.append(loss)
        res.update(zip(idx, per))
    model.train(was)
    starts = [res[i][0] for i in range(len(feats))]
    ends = [res[i][1] for i in range(len(feats))]
    return starts, ends, sum(losses) / max(len(feats), 1)


class Embedder:
    """Sentence embeddings from an encoder: mean of the last hidden states over real tokens, L2-normalised."""

    def __init__(self, name: str = "all-MiniLM-L6-v2"):
        from lib.models import registry
        self.tok = registry.load_tokenizer(name)
        with _quiet():
            self.model = registry.load_model(name).eval()

    @torch.no_grad()
    def encode(self, texts, batch_size: int = 128) -> np.ndarray:
        out = []
        for k in range(0, len(texts), batch_size):
            b = self.tok(list(texts[k:k + batch_size]), padding=True, truncation=True, max_length=64,
                         return_tensors="pt")
            h = self.model(**b).last_hidden_state
            from lib.models.registry import mean_pool
            v = mean_pool(h, b["attention_mask"])
            out.append(torch.nn.functional.normalize(v, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1))


@stages.timed("predict")
def embedding_similarity(embedder: Embedder, predictions: dict, examples) -> tuple[float, dict]:
    """Cosine similarity of mean-pooled embeddings of prediction and gold (max over gold answers), in percent.
    An empty prediction scores 0. This is an embedding similarity, not BERTScore (no token alignment)."""
    texts = sorted({predictions.get(e["id"], "") for e in examples} | {g for e in examples for g in e["answers"]["text"]})
    texts = [t for t in texts if t.strip()]
    vec = dict(zip(texts, embedder.encode(texts))) if texts else {}
    per = {}
    for e in examples:
        p = predictions.get(e["id"], "")
        per[e["id"]] = 0.0 if p not in vec else max(float(vec[p] @ vec[g]) for g in e["answers"]["text"] if g in vec)
    return 100 * float(np.mean(list(per.values()))) if per else 0.0, per


class _quiet:
    """Silence transformers' per-load report and progress bar (one per method would clutter the HTML report)."""

    def __enter__(self):
        from transformers.utils import logging as tl
        self.level = tl.get_verbosity()
        tl.set_verbosity_error()
        tl.disable_progress_bar()

    def __exit__(self, *exc):
        from transformers.utils import logging as tl
        tl.set_verbosity(self.level)
        tl.enable_progress_bar()


METHODS = ("pretrained", "full", "lora", "prompt")


def create_model(name: str, method: str, lora_r: int = 8, lora_alpha: int = 16, lora_targets=("query", "value"),
                 lora_dropout: float = 0.1, virtual_tokens: int = 20, dropout: float = -1.0):
    """AutoModelForQuestionAnswering for `name` (every encoder dropout set to `dropout`, -1: the checkpoint's own;
    registry.dropout_overrides), wrapped per method:
    pretrained / full: the plain model (all weights trainable; 'pretrained' is only evaluated);
    lora: peft LoRA on `lora_targets` (+ the QA head, trainable: it is task-specific and, for an encoder without a
          QA head, freshly initialised);
    prompt: peft prompt tuning with `virtual_tokens` soft-prompt vectors (+ the QA head, trainable)."""
    from transformers import AutoModelForQuestionAnswering

    from lib.models import registry
    if method not in METHODS:
        raise LabError(f"METHODS: unknown method {method!r}; expected some of {', '.join(METHODS)}")
    with _quiet():  # the load report only says qa_outputs is new, which head_is_new() reports once
        model = registry.load_model(name, AutoModelForQuestionAnswering, **registry.dropout_overrides(name, dropout))
    if method in ("pretrained", "full"):
        return model
    from lib.models.adapters import create_peft_model
    pm = create_peft_model(model, method, r=lora_r, alpha=lora_alpha, dropout=lora_dropout,
                           target_modules=lora_targets, task_type="QUESTION_ANS", virtual_tokens=virtual_tokens)
    for n, p in pm.named_parameters():  # make sure the span head trains (peft's QA task type normally does this)
        if "qa_outputs" in n and "original_module" not in n:
            p.requires_grad_(True)
    return pm


def head_is_new(name: str) -> bool:
    """True when the checkpoint has no trained QA head (transformers initialises qa_outputs at random)."""
    from transformers import AutoConfig

    from lib.models import registry
    cfg = registry.load_model(name, AutoConfig)
    return not any("QuestionAnswering" in a for a in (cfg.architectures or []))
