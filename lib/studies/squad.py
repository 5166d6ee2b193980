"""Extractive QA on SQuAD v1.1: load/validate/split, offset-mapping preprocessing, n-best span post-processing,
the official EM/F1, an embedding-similarity score, and the four methods (pretrained, full, LoRA, prompt tuning).

Preprocessing and post-processing follow Hugging Face's `run_qa.py` / `utils_qa.py`:
* a long context is cut into several *features* of at most `max_length` tokens (question + a window of the context),
  consecutive windows overlapping by `stride` tokens; the tokenizer's offset mapping ties every context token back to
  its characters, so a gold answer (characters) becomes start/end token positions, or (0, 0) = the [CLS] token when
  the answer is not inside that window;
* at prediction time every feature proposes its `n_best` start and end tokens; pairs inside the context with
  start <= end and length <= `max_answer_length` are scored start_logit + end_logit, and the best pair over all
  features of a question is mapped back to its characters through the offsets.
EM/F1 are the official SQuAD v1.1 evaluation script's (normalise: lower-case, drop punctuation and the articles
a/an/the, collapse whitespace; maximum over the gold answers); `evaluate` cannot fetch its metric offline.
"""
from __future__ import annotations

import collections
import json
import random
import re
import string
from pathlib import Path

import numpy as np
import torch

from lib.core import paths
from lib.core.errors import LabError, read_text

DEV_FILE = "squad_v1.1/dev-v1.1.json"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # the keys of a feature the model takes


# ---------------------------------------------------------------- data: load, validate, split
def parse(data, source: str = "<squad>") -> list[dict]:
    """SQuAD JSON object -> flat examples {id, title, context, question, answers: {text: [...], answer_start: [...]}}.

    Raises LabError naming the question id (or the article / paragraph) for a missing field or an answer whose
    `answer_start` does not point at its `text` in the context."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise LabError(f"{source}: expected a JSON object with a 'data' list of articles (SQuAD v1.1 format)")
    out, seen = [], set()
    for ai, art in enumerate(data["data"]):
        if not isinstance(art, dict) or "title" not in art or not isinstance(art.get("paragraphs"), list):
            raise LabError(f"{source}: article {ai}: missing 'title' or 'paragraphs'; expected {{title, paragraphs}}")
        for pi, par in enumerate(art["paragraphs"]):
            if not isinstance(par, dict) or not isinstance(par.get("context"), str) or not isinstance(par.get("qas"), list):
                raise LabError(f"{source}: article {art['title']!r} paragraph {pi}: missing 'context' or 'qas'")
            ctx = par["context"]
            for qi, qa in enumerate(par["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                where = f"{source}: question {qid}" if qid else f"{source}: article {art['title']!r} paragraph {pi} question {qi}"
                if not qid:
                    raise LabError(f"{where}: missing field 'id'; expected id, question, answers")
                for f in ("question", "answers"):
                    if f not in qa:
                        raise LabError(f"{where}: missing field {f!r}; expected id, question, answers")
                if qid in seen:
                    raise LabError(f"{where}: duplicate question id")
                seen.add(qid)
                if not isinstance(qa["answers"], list) or not qa["answers"]:
                    raise LabError(f"{where}: 'answers' must be a non-empty list of {{text, answer_start}}")
                texts, starts = [], []
                for a in qa["answers"]:
                    if not isinstance(a, dict) or "text" not in a or "answer_start" not in a:
                        raise LabError(f"{where}: an answer lacks 'text' or 'answer_start'")
                    s, t = a["answer_start"], a["text"]
                    if not isinstance(s, int) or ctx[s:s + len(t)] != t:
                        raise LabError(f"{where}: answer_start {s!r} does not match answer text {t!r} "
                                       f"(context there reads {ctx[s:s + len(t)] if isinstance(s, int) else ''!r})")
                    texts.append(t)
                    starts.append(s)
                out.append({"id": qid, "title": art["title"], "context": ctx, "question": qa["question"],
                            "answers": {"text": texts, "answer_start": starts}})
    return out


def load_file(path) -> list[dict]:
    path = Path(path)
    text = read_text(path, "the official SQuAD v1.1 JSON (dev-v1.1.json)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        cut = " (the file ends early: truncated?)" if e.pos >= len(text.rstrip()) else ""
        raise LabError(f"{path}:{e.lineno}: malformed JSON at column {e.colno}: {e.msg}{cut}; "
                       "expected the official SQuAD v1.1 JSON") from None
    return parse(data, str(path))


def load_dev(data_dir: str = "") -> list[dict]:
    return load_file(paths.data_dir(data_dir) / DEV_FILE)


def load_hub() -> tuple[list[dict], list[dict]]:
    """The official train and dev sets from the hub (datasets.load_dataset('squad')); gpu profile only."""
    import datasets
    ds = datasets.load_dataset("squad")
    conv = lambda split: [{"id": r["id"], "title": r["title"], "context": r["context"], "question": r["question"],
                           "answers": {"text": list(r["answers"]["text"]),
                                       "answer_start": list(r["answers"]["answer_start"])}} for r in split]
    return conv(ds["train"]), conv(ds["validation"])


def split_by_article(examples: list[dict], eval_articles: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Seeded split by article title: `eval_articles` whole articles go to the evaluation part, the rest to training,
    so no article (and no context) appears in both."""
    titles = sorted({e["title"] for e in examples})
    if not 0 < eval_articles < len(titles):
        raise LabError(f"ARTICLES: {eval_articles} articles held out: expected between 1 and {len(titles) - 1} "
                       f"(there are {len(titles)} articles)")
    rng = random.Random(seed)
    ev = set(rng.sample(titles, eval_articles))
    return [e for e in examples if e["title"] not in ev], [e for e in examples if e["title"] in ev]


def subsample(examples: list[dict], n: int, seed: int = 0) -> list[dict]:
    """At most n examples (0: all), seeded, keeping the original order."""
    if not n or n >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


# ---------------------------------------------------------------- preprocessing with offset mappings
def _tokenize(tok, examples, max_length, stride):
    if not getattr(tok, "is_fast", False):
        raise LabError("extractive QA preprocessing needs a fast tokenizer (offset mappings)")
    pad_right = tok.padding_side == "right"
    q = [e["question"].lstrip() for e in examples]
    c = [e["context"] for e in examples]
    return tok(q if pad_right else c, c if pad_right else q, truncation="only_second" if pad_right else "only_first",
               max_length=max_length, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
               padding=False)


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


def features(P, tok, data: dict) -> dict:
    """Windows of the train / val / test parts (prepare_train_features with P.MAX_LENGTH, P.STRIDE), tokenised once
    and shared by every method. Every training window trains, those without the answer labelled [CLS] (run_qa.py):
    training only on the windows that hold the answer (a fifth fewer steps) was measured worse here (full fine-tuning
    validation F1 53.3 on 1,800 questions against 62.6 on 1,500 with every window, 2026-12-01)."""
    return {k: prepare_train_features(tok, data[k], P.MAX_LENGTH, P.STRIDE) for k in ("train", "val", "test")}


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


# ---------------------------------------------------------------- model forward, loss and prediction
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
def predict_logits(model, tok, feats, batch_size: int = 64) -> tuple[list, list, float]:
    """Per feature: start and end logits (numpy, unpadded); and the mean span loss (from the same forward pass)."""
    was = model.training
    model.eval()
    starts, ends, losses = [], [], []
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))  # length-sorted: less padding
    res = {}
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        b = collate(tok, [feats[i] for i in idx])
        s, e = qa_logits(model, b)  # one forward pass per batch: the loss reuses these logits
        losses.append(float(span_loss_from_logits(s, e, b)) * len(idx))
        for j, i in enumerate(idx):
            n = len(feats[i]["input_ids"])
            res[i] = (s[j, :n].cpu().numpy(), e[j, :n].cpu().numpy())
    model.train(was)
    starts = [res[i][0] for i in range(len(feats))]
    ends = [res[i][1] for i in range(len(feats))]
    return starts, ends, sum(losses) / max(len(feats), 1)


def postprocess(examples, feats, start_logits, end_logits, n_best: int = 20, max_answer_length: int = 30) -> dict:
    """n-best span search (utils_qa.postprocess_qa_predictions for SQuAD v1.1) -> {question id: answer text}.

    For each feature, the n_best highest start and end logits are paired; a pair is kept when both tokens lie in the
    context (offset not None), end >= start and end - start + 1 <= max_answer_length; its score is
    start_logit + end_logit. The best-scoring pair over all features of a question wins and is cut out of the
    context with the offsets. A question with no valid pair gets the empty answer."""
    by_ex = collections.defaultdict(list)
    for i, f in enumerate(feats):
        by_ex[f["example_id"]].append(i)
    preds = {}
    for ex in examples:
        best, best_score = "", -np.inf
        for i in by_ex.get(ex["id"], []):
            s, e, offs = np.asarray(start_logits[i]), np.asarray(end_logits[i]), feats[i]["offset_mapping"]
            for a in np.argsort(s)[::-1][:n_best]:
                for b in np.argsort(e)[::-1][:n_best]:
                    if a >= len(offs) or b >= len(offs) or offs[a] is None or offs[b] is None:
                        continue
                    if b < a or b - a + 1 > max_answer_length:
                        continue
                    score = s[a] + e[b]
                    if score > best_score:
                        best_score, best = score, ex["context"][offs[a][0]:offs[b][1]]
        preds[ex["id"]] = best
    return preds


# ---------------------------------------------------------------- official SQuAD v1.1 metrics
def normalize_answer(s: str) -> str:
    """Lower-case, remove punctuation, remove the articles a/an/the, collapse whitespace (the official script)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


def squad_scores(predictions: dict, examples) -> tuple[dict, dict]:
    """-> ({"exact_match", "f1"} in percent, {id: {"em", "f1"}}): max over gold answers, mean over questions."""
    per = {}
    for ex in examples:
        pred = predictions.get(ex["id"], "")
        golds = ex["answers"]["text"]
        per[ex["id"]] = {"em": max(exact_match(pred, g) for g in golds), "f1": max(f1(pred, g) for g in golds)}
    n = max(len(per), 1)
    return ({"exact_match": 100 * sum(v["em"] for v in per.values()) / n,
             "f1": 100 * sum(v["f1"] for v in per.values()) / n}, per)


# ---------------------------------------------------------------- embedding similarity (not BERTScore)
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


# ---------------------------------------------------------------- the four methods
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
    cfg = AutoConfig.from_pretrained(registry.local_path(name))
    return not any("QuestionAnswering" in a for a in (cfg.architectures or []))


def worst_errors(examples, predictions: dict, per: dict, k: int = 10):
    """The k questions with the lowest F1 (ties: longer gold first), with question, gold answers and prediction."""
    import pandas as pd
    rows = [{"id": e["id"], "f1": 100 * per[e["id"]]["f1"], "question": e["question"],
             "gold": " | ".join(dict.fromkeys(e["answers"]["text"])), "prediction": predictions.get(e["id"], "")}
            for e in examples]
    rows.sort(key=lambda r: (r["f1"], -len(r["gold"])))
    return pd.DataFrame(rows[:k])


# ---------------------------------------------------------------- notebook 05 building blocks
STUDY = [  # the study's reported numbers (percent); its "BERTScore" is not comparable with our embedding similarity
    {"method": "pretrained", "exact_match": 0.0, "f1": 0.89, "bertscore": 10.12},
    {"method": "lora", "exact_match": 24.0, "f1": 32.6, "bertscore": 72.2},
    {"method": "prompt", "exact_match": 0.0, "f1": 1.91, "bertscore": 58.6},
]
ANCHORS = {"bert-tiny full fine-tuning F1": 32.5, "BERT-base F1": 88.5, "BERT-base EM": 80.8}


def _describe(name, exs):
    return f"{name}: {len(exs):,} questions from {len({e['title'] for e in exs})} articles"


def load_splits(P) -> dict:
    """train / val / test examples and a description.

    dev_split (offline): the dev file is split BY ARTICLE (seeded): ARTICLES["eval"] articles are the evaluation part
    (test), then ARTICLES["val"] of the remaining articles validate (early stopping), the rest train.
    hub: the official train set (ARTICLES["val"] of its articles validate) and the full official dev set as test.
    MAX_*_SAMPLES then subsample each part (seeded)."""
    if P.DATA_SOURCE == "hub":
        full_train, test = load_hub()
        src = "official train set (hub `squad`) and the full official dev set"
    else:
        dev = load_dev(P.DATA_DIR)
        full_train, test = split_by_article(dev, P.ARTICLES["eval"], P.SEED)
        src = (f"dev-v1.1.json only ({len(dev):,} questions, {len({e['title'] for e in dev})} articles), "
               f"split by article with seed {P.SEED}: {P.ARTICLES['eval']} articles evaluate, the rest train")
    train_part, val = split_by_article(full_train, P.ARTICLES["val"], P.SEED + 1)
    parts = {"train": subsample(train_part, P.MAX_TRAIN_SAMPLES, P.SEED),
             "val": subsample(val, P.MAX_VAL_SAMPLES, P.SEED),
             "test": subsample(test, P.MAX_EVAL_SAMPLES, P.SEED)}
    lines = [f"source: {src}",
             _describe("training part (before subsampling)", train_part),
             _describe("validation part, early stopping (before subsampling)", val),
             _describe("evaluation part (before subsampling)", test)]
    for k, v in parts.items():
        lines.append(_describe(f"used {k}", v))
    overlap = ({e["title"] for e in parts["train"]} | {e["title"] for e in parts["val"]}) & {e["title"] for e in parts["test"]}
    lines.append(f"articles shared between training/validation and evaluation: {len(overlap)}")
    parts["description"] = "\n".join(lines)
    return parts


def _peak_memory_mb(dev) -> float:
    from lib.reporting.report import peak_memory_mb
    peak = peak_memory_mb()
    return peak["peak_cuda_mb"] if dev.type == "cuda" else peak["peak_rss_mb"]


def run_method(P, method: str, tok, data: dict, feats: dict, embedder: Embedder, log=print) -> dict:
    """Build, (train,) predict and score one method. Training: lib.training.train.fit with early stopping on the validation
    span loss (monitor "loss", mode "min", patience P.PATIENCE), best checkpoint restored."""
    import time

    from lib.models import registry
    from lib.training import train
    dev = train.device()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(P.SEED)
    model = create_model(P.MODEL, method, P.LORA["r"], P.LORA["alpha"], P.LORA["targets"], P.LORA["dropout"],
                         P.PROMPT["virtual_tokens"], P.DROPOUT).to(dev)
    counts = registry.count_parameters(model)

    def evaluate(m):
        s, e, loss = predict_logits(m, tok, feats["val"], P.EVAL_BATCH_SIZE)
        sc, _ = squad_scores(postprocess(data["val"], feats["val"], s, e, **P.SPANS), data["val"])
        return {"loss": loss, **sc}

    hist = None
    if method != "pretrained":
        lr = {"full": P.LR_FULL, "lora": P.LORA["lr"], "prompt": P.PROMPT["lr"]}[method]
        cfg = train.TrainConfig(epochs=P.EPOCHS, lr=lr, warmup_ratio=P.WARMUP_RATIO, patience=P.PATIENCE,
                                max_steps=(method == "prompt" and P.PROMPT["max_steps"]) or P.MAX_STEPS,
                                eval_every=P.EVAL_EVERY, grad_accum=P.GRAD_ACCUM,
                                monitor="loss", mode="min", bf16=P.BF16)
        hist = train.fit(model, loader(tok, feats["train"], P.BATCH_SIZE, True, P.SEED), span_loss, evaluate, cfg,
                         log=log)
    t = time.time()
    s, e, test_loss = predict_logits(model, tok, feats["test"], P.EVAL_BATCH_SIZE)
    preds = postprocess(data["test"], feats["test"], s, e, **P.SPANS)
    scores, per = squad_scores(preds, data["test"])
    sim, per_sim = embedding_similarity(embedder, preds, data["test"])
    out = {"method": method, "exact_match": scores["exact_match"], "f1": scores["f1"], "similarity": sim,
           "test_loss": test_loss, "trainable_params": counts["trainable"], "total_params": counts["total"],
           "train_seconds": hist.train_seconds if hist else 0.0, "predict_seconds": time.time() - t,
           "peak_memory_mb": _peak_memory_mb(dev), "optimizer_steps": hist.optimizer_steps if hist else 0,
           "stopped_early": bool(hist and hist.stopped_early), "best_step": (hist.best or {}).get("step") if hist else None,
           "history": hist, "predictions": preds, "per_question": per, "per_similarity": per_sim}
    del model
    return out


def method_verdicts(runs: list[dict], baseline: str = "pretrained") -> list[str]:
    """One plain line per trained method: its F1 against the untrained `baseline` row on the same questions, with
    the paired standard error of the per-question F1 difference; a gain under two standard errors is not called
    a win."""
    base = next((r for r in runs if r["method"] == baseline), None)
    if base is None:
        return []
    lines = []
    for r in runs:
        if r is base:
            continue
        d = np.array([100 * (r["per_question"][q]["f1"] - base["per_question"][q]["f1"]) for q in base["per_question"]])
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
        gain = float(d.mean()) if len(d) else 0.0
        verdict = "beats" if gain > 2 * se else "does NOT clearly beat"
        lines.append(f"{r['method']}: F1 {r['f1']:.1f} {verdict} {baseline} ({base['f1']:.1f}): "
                     f"{gain:+.1f} F1, paired standard error {se:.1f} over {len(d)} questions")
    return lines


def results_table(runs: list[dict]):
    import pandas as pd
    cols = ["method", "exact_match", "f1", "similarity", "trainable_params", "train_seconds", "peak_memory_mb",
            "optimizer_steps", "best_step", "stopped_early"]
    return pd.DataFrame([{k: r[k] for k in cols} for r in runs]).set_index("method")


def learning_curves(runs: list[dict]):
    """Left: training loss (moving mean) and validation loss per method; right: validation F1 per method."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, r in enumerate(x for x in runs if x["history"] is not None):
        h, c = r["history"], f"C{i}"
        if h.steps:
            st, lo = zip(*h.steps)
            w = max(1, len(lo) // 30)
            from lib.reporting.plots import moving_mean
            a.plot(st[w - 1:], moving_mean(lo, w), c=c, alpha=0.5, label=f"{r['method']} train")
        a.plot([e["step"] for e in h.evals], [e["loss"] for e in h.evals], "o-", c=c, label=f"{r['method']} validation")
        b.plot([e["step"] for e in h.evals], [e["f1"] for e in h.evals], "o-", c=c, label=r["method"])
        if h.best:
            b.axvline(h.best["step"], ls=":", c=c)
    a.set(title="Span loss (training: moving mean; validation)", xlabel="optimiser step", ylabel="loss")
    b.set(title="Validation F1 (dotted: best checkpoint by loss)", xlabel="optimiser step", ylabel="F1 (%)")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig
