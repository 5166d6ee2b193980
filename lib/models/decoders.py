"""Decoders for classification, solved once for any model: pad token and padding side, 4-/8-bit loading
(bitsandbytes NF4, double quantisation), k-bit preparation, LoRA; a classifier head over the last non-pad token;
and instruct decoders that generate the label names (chat prompt, masked-prompt training, robust parsing).
"""
from __future__ import annotations

import re
import string

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    BitsAndBytesConfig,
)

from lib.core import precision, stages
from lib.core.distributed import distributed_map
from lib.core.errors import LabError
from lib.models import registry


def prepare_tokenizer(tok, padding_side: str):
    """Give a decoder tokenizer a pad token without resizing embeddings (reuse EOS, else UNK) and set the side.

    Classification pools the last non-pad token (transformers finds it from pad_token_id), so right padding is the
    natural choice; generation needs left padding so every prompt ends where the new tokens start.
    """
    from lib.models.registry import ensure_pad_token
    ensure_pad_token(tok)
    tok.padding_side = padding_side
    return tok


def quantization_config(mode: str):
    """BitsAndBytesConfig for '4bit' (NF4, double quantisation, bf16 compute) or '8bit'; None for 'none'."""
    if mode == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if mode == "none":
        return None
    raise LabError(f"quantization {mode!r}: expected 4bit | 8bit | none")


def create_and_prepare_model(name: str, task: str, n_labels: int = 0, quantization: str = "4bit",
                             lora_r: int = 16, lora_alpha: int = 32, lora_dropout: float = 0.05,
                             target_modules="all-linear", gradient_checkpointing: bool = True):
    """(tokenizer, peft model) for task 'classifier' (sequence-classification head) or 'generative' (causal LM)."""
    from peft import TaskType

    from lib.models.adapters import create_peft_model
    tok = prepare_tokenizer(registry.load_tokenizer(name), "right" if task == "classifier" else "left")
    qc = quantization_config(quantization)
    kw = {"quantization_config": qc} if qc is not None else {"dtype": torch.float32}
    if task == "classifier":
        model = registry.load_model(name, AutoModelForSequenceClassification, num_labels=n_labels,
                                  problem_type="multi_label_classification", **kw)
        task_type = TaskType.SEQ_CLS  # keeps the new score head trainable (modules_to_save)
    elif task == "generative":
        model = registry.load_model(name, AutoModelForCausalLM, **kw)
        task_type = TaskType.CAUSAL_LM
    else:
        raise LabError(f"task {task!r}: expected classifier | generative")
    model.config.pad_token_id = tok.pad_token_id
    return tok, create_peft_model(model, "lora", r=lora_r, alpha=lora_alpha, dropout=lora_dropout,
                                  target_modules=target_modules, task_type=task_type, quantized=qc is not None,
                                  gradient_checkpointing=gradient_checkpointing)


# ---- generative labelling -------------------------------------------------------------------------------------

SYSTEM = "You are an annotator who tags the emotions expressed in tweets."


def user_prompt(tweet: str, labels) -> str:
    """The instruction first and the tweet last, so every prompt shares one long prefix (cached once)."""
    return (f"Which of these emotions does the tweet express: {', '.join(labels)}?\n"
            f"Answer with the emotions present, comma-separated, or none.\n\nTweet: {tweet}")


def answer_text(row_labels, labels) -> str:
    names = [lab for lab, v in zip(labels, row_labels) if v >= 0.5]
    return ", ".join(names) if names else "none"


def chat_prompt(tok, tweet: str, labels) -> str:
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user_prompt(tweet, labels)}]
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


_SLOT = "<<TWEET-SLOT>>"


def prompt_parts(tok, labels) -> tuple[list, str]:
    """(token ids of the prompt text every tweet shares, the template text that follows the tweet).

    A prompt's ids are always prefix ids + ids of (tweet + rest), in training and in generation alike, so the
    prefix's key/value cache computed once serves every tweet."""
    text = chat_prompt(tok, _SLOT, labels)
    if text.count(_SLOT) != 1:
        raise LabError(f"the chat template of {getattr(tok, 'name_or_path', 'this tokenizer')} altered the tweet slot")
    pre, post = text.split(_SLOT)
    return tok(pre, add_special_tokens=False)["input_ids"], post


def prompt_ids(tok, tweet: str, labels, parts=None) -> list:
    pre, post = parts or prompt_parts(tok, labels)
    return pre + tok(tweet + post, add_special_tokens=False)["input_ids"]


def sft_example(tok, tweet: str, row_labels, labels, max_length: int = 256, parts=None) -> dict:
    """input_ids/labels for supervised tuning: the loss covers only the answer and the end-of-turn token."""
    prompt = prompt_ids(tok, tweet, labels, parts)
    answer = tok(answer_text(row_labels, labels) + (tok.eos_token or ""), add_special_tokens=False)["input_ids"]
    ids = (prompt + answer)[-max_length:]
    lab = ([-100] * len(prompt) + answer)[-max_length:]
    return {"input_ids": ids, "labels": lab}


def pad_sft_batch(tok, examples) -> dict:
    """Right-pad a list of sft_example dicts with transformers' DataCollatorForSeq2Seq: input ids with the pad id,
    attention mask with 0, labels with -100. Always on the right, whatever the tokenizer's side (generation pads on
    the left): every example then starts at position 0, so the shared prompt prefix is column 0..n (sft_loss)."""
    from transformers import DataCollatorForSeq2Seq
    tok = registry.right_padding(tok)
    pad = DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100, return_tensors="pt")
    return dict(pad([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples]))


def sft_loss(n_prefix: int = 0):
    """Loss of a padded SFT batch (pad_sft_batch) for lib.training.train.fit: mean token cross-entropy on the answer tokens.

    Every example's ids start with the same `n_prefix` prompt ids (prompt_parts: system turn, instruction, label
    list: about two thirds of each example). With n_prefix > 0 that prefix runs once per batch, its key/value cache
    (with gradients: LoRA changes it) is repeated across the batch, and only the tweet, template end and answer run
    per example: the same loss as the full forward (a test compares loss and gradients) for ~2x fewer tokens. The
    prefix's LoRA-dropout mask is then shared by the batch. Falls back to the full forward when n_prefix is 0, when
    gradient checkpointing is on (transformers turns the cache off then), when the model is DDP-wrapped (several
    processes: DDP syncs the gradients of one forward per backward), or when a batch lacks the prefix.
    """
    import torch.nn.functional as F
    from transformers import DynamicCache

    def full(m, b):
        return m(**{k: v.to(m.device) for k, v in b.items()}).loss

    def loss_fn(m, b):
        inner = getattr(m, "module", m)  # DDP wraps the model; its attributes live on .module
        ids = b["input_ids"]
        ckpt = getattr(inner, "is_activation_checkpointing", None)  # transformers 5 name; 4.x: is_gradient_checkpointing
        ckpt = getattr(inner, "is_gradient_checkpointing", False) if ckpt is None else ckpt
        if n_prefix <= 0 or ckpt or inner is not m or ids.shape[1] <= n_prefix + 1 \
                or not bool((ids[:, :n_prefix] == ids[:1, :n_prefix]).all()):  # inner is not m: DDP wants one forward
            return full(m, b)
        dev = next(inner.parameters()).device
        ids, att, lab = ids.to(dev), b["attention_mask"].to(dev), b["labels"].to(dev)
        cache = m(input_ids=ids[:1, :n_prefix], past_key_values=DynamicCache(), use_cache=True,
                  logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(ids.shape[0])
        # position t of the rest predicts token t + 1 of the rest; the prefix's own targets are prompt (-100). The
        # vocabulary projection runs only from the batch's first answer target on (logits_to_keep): the tweets
        # before it carry no loss (SmolLM2, batches of 8 tweets: the same losses, 20.3-21.4 s instead of 22.8 for 8
        # steps alone; in the cpu run 306 s for 100 steps against 307 before, on a slower afternoon, 2026-12-02)
        target = lab[:, n_prefix + 1:]
        first = int((target != -100).any(0).int().argmax())
        logits = m(input_ids=ids[:, n_prefix:], attention_mask=att, past_key_values=cache, use_cache=True,
                   logits_to_keep=target.shape[1] + 1 - first).logits
        return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), target[:, first:].flatten(), ignore_index=-100)
    return loss_fn


SYNONYMS = {"angry": "anger", "anticipating": "anticipation", "disgusted": "disgust", "fearful": "fear",
            "scared": "fear", "afraid": "fear", "happy": "joy", "joyful": "joy", "happiness": "joy",
            "loving": "love", "optimistic": "optimism", "pessimistic": "pessimism", "sad": "sadness",
            "surprised": "surprise", "trusting": "trust"}
_SPLIT = re.compile(r",|;|\n|/|\band\b|\|")


def parse_labels(text: str, labels) -> tuple[set, list, bool]:
    """Parse a generated answer into a label set.

    Returns (labels found, words dropped as unknown, needed_cleaning). Case, punctuation, bullets, numbering,
    'and', synonyms like 'sad'/'happy' and a trailing explanation after the first line are handled; 'none' (or an
    empty answer) is the empty set. `needed_cleaning` is True when the text was not already the canonical form.
    """
    known = {lab.lower(): lab for lab in labels}
    first = text.strip().split("\n\n")[0]
    found, dropped = [], []
    for part in _SPLIT.split(first.lower()):
        w = part.strip().strip(string.punctuation + " *-•0123456789.").strip()
        if not w or w in ("none", "no emotion", "no emotions", "neutral"):
            continue
        w = SYNONYMS.get(w, w)
        if w in known:
            found.append(known[w])
        else:
            hits = [known[k] for k in known if re.search(rf"\b{k}\b", w)] or \
                   [known[SYNONYMS[s]] for s in SYNONYMS if re.search(rf"\b{s}\b", w)]
            found += hits
            if not hits:
                dropped.append(w)
    canonical = ", ".join(dict.fromkeys(found)) if found else "none"
    return set(found), dropped, text.strip().lower() != canonical.lower()


def label_first_tokens(tok, labels) -> list[list[int]]:
    """Per label, the token ids that can start it in an answer: its first token at the answer's start ("anger") and
    after a separator (" anger"). A LabError when two labels share a starting token (their scores would mix)."""
    firsts = [sorted({tok(v, add_special_tokens=False)["input_ids"][0] for v in (lab, " " + lab)}) for lab in labels]
    owner = {}
    for lab, ids in zip(labels, firsts):
        for i in ids:
            if owner.setdefault(i, lab) != lab:
                raise LabError(f"labels {owner[i]!r} and {lab!r} start with the same token {tok.convert_ids_to_tokens(i)!r} "
                               f"in {getattr(tok, 'name_or_path', 'this tokenizer')}: their generation scores cannot be told apart")
    return firsts


class LabelProbs:
    """A logits processor for `generate` that records, per answer, the highest probability each label's first token
    had at any step before the answer ended: the model's own confidence in each label, also for labels greedy
    decoding did not pick (thresholds are then tuned on it like a classifier's probabilities). It changes nothing."""

    def __init__(self, firsts: list[list[int]], stop_ids, n_rows: int, n_prompt: int):
        self.firsts, self.n_prompt = firsts, n_prompt
        self.stop = torch.tensor(sorted(set(stop_ids)))
        self.best = torch.zeros(n_rows, len(firsts))

    def __call__(self, input_ids, scores):
        p = scores.float().softmax(-1)  # on the model's device; only the labels' columns come to the host
        step = torch.stack([p[:, ids].max(1).values for ids in self.firsts], 1).cpu()
        gen = input_ids[:, self.n_prompt:].cpu()
        live = ~torch.isin(gen, self.stop).any(1) if gen.shape[1] else torch.ones(len(gen), dtype=torch.bool)
        self.best = torch.where(live[:, None], torch.maximum(self.best, step), self.best)
        return scores


@torch.no_grad()
@stages.timed("predict")
def generate_answers(model, tok, tweets, labels, batch_size: int = 16, max_new_tokens: int = 24,
                     prefix_cache: bool = True, scores: bool = False):
    """Greedy answers for a list of tweets; with scores=True also (tweets x labels) label scores (LabelProbs).

    The shared prompt prefix (system turn, instruction, label list) runs once and its key/value cache is copied into
    every batch, so per example only the tweet and the template's closing tokens are computed. Tweets are sorted by
    length and each batch's tweet parts are left-padded between prefix and tweet (masked; position ids follow the
    attention mask). prefix_cache=False runs the full prompts instead (same answers; a test compares the two).
    """
    import copy

    from transformers import DynamicCache, LogitsProcessorList
    model.eval()
    dev = next(model.parameters()).device
    pre, post = prompt_parts(tok, labels)
    rest = [prompt_ids(tok, t, labels, ([], post)) for t in tweets]  # each prompt is pre + rest
    if not prefix_cache:
        pre, rest = [], [pre + r for r in rest]
    cache = None
    if pre:
        with precision.inference(dev):
            cache = model(input_ids=torch.tensor([pre], device=dev), past_key_values=DynamicCache(),
                          use_cache=True).past_key_values
    firsts = label_first_tokens(tok, labels) if scores else None
    eos = model.generation_config.eos_token_id
    stop = ([eos] if isinstance(eos, int) else list(eos or [])) + [tok.pad_token_id]
    order = sorted(range(len(rest)), key=lambda i: (len(rest[i]), i))
    out, label_scores = [""] * len(rest), np.zeros((len(rest), len(labels)), dtype=np.float32)

    def answer(b):
        n = max(len(rest[i]) for i in b)
        ids = torch.tensor([pre + [tok.pad_token_id] * (n - len(rest[i])) + rest[i] for i in b], device=dev)
        mask = torch.tensor([[1] * len(pre) + [0] * (n - len(rest[i])) + [1] * len(rest[i]) for i in b], device=dev)
        kw = {}
        if cache is not None:
            kw["past_key_values"] = copy.deepcopy(cache)
            kw["past_key_values"].batch_repeat_interleave(len(b))
        rec = LabelProbs(firsts, stop, len(b), ids.shape[1]) if scores else None
        if rec is not None:
            kw["logits_processor"] = LogitsProcessorList([rec])
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id, **kw)
        texts = tok.batch_decode(gen[:, ids.shape[1]:], skip_special_tokens=True)
        return texts, [rec.best[k].numpy() for k in range(len(b))] if rec is not None else None
    batches = [order[j:j + batch_size] for j in range(0, len(order), batch_size)]
    with precision.inference(dev):
        done = distributed_map(answer, batches)  # several processes: spread
    for b, (texts, best) in zip(batches, done):
        for k, i in enumerate(b):
            out[i] = texts[k]
            if best is not None:
                label_scores[i] = best[k]
    return (out, label_scores) if scores else out


def answers_to_matrix(answers, labels) -> tuple[np.ndarray, dict]:
    """0/1 matrix from generated answers, plus parsing statistics for the report."""
    y = np.zeros((len(answers), len(labels)), dtype=int)
    dropped, cleaned = [], 0
    for i, a in enumerate(answers):
        found, drop, needed = parse_labels(a, labels)
        for lab in found:
            y[i, labels.index(lab)] = 1
        dropped += drop
        cleaned += needed
    return y, {"answers": len(answers), "needed_cleaning": cleaned, "dropped_words": len(dropped),
               "examples_dropped": sorted(set(dropped))[:20]}


def float_base(name: str, task: str, n_labels: int = 0):
    """The untuned base model in float: float32 on CPU (bitsandbytes 4-bit matmuls are slow there); on CUDA on the
    GPU in the training dtype (bf16 where supported, else fp16: a 2B model in fp32 on the host runs out of memory)."""
    cls = AutoModelForSequenceClassification if task == "classifier" else AutoModelForCausalLM
    kw = {"num_labels": n_labels, "problem_type": "multi_label_classification"} if task == "classifier" else {}
    if torch.cuda.is_available():
        kw.update(device_map={"": torch.cuda.current_device()},
                  dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return registry.load_model(name, cls, **{"dtype": torch.float32, **kw}).eval()


def float_copy_with_adapter(peft_model, name: str, task: str, n_labels: int, adapter_dir):
    """Save the trained LoRA adapter (plus head) and load it onto the float base model, merged, for fast CPU
    inference: bitsandbytes 4-bit matmuls are slow on CPU. Predictions differ from the 4-bit model only by the
    base weights' quantisation error (the report says which one predicted)."""
    from peft import PeftModel
    peft_model.save_pretrained(adapter_dir)
    base = float_base(name, task, n_labels)
    base.config.pad_token_id = peft_model.config.pad_token_id
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().eval()
