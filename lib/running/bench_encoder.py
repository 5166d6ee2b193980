"""`python -m lib.running.bench encoder`: training throughput of the lab's engine (lib.training.train.fit, called as notebook 02
calls it: length-grouped batches with dynamic padding, class-weighted BCE left at weight 1) against the peer a user
would pick instead, Hugging Face `Trainer` with length grouping (`train_sampling_strategy="group_by_length"`), on the
same model, E-c training tweets, batch size, hyper-parameters and steps; and the engine with every batch padded to
max_length as a second reference. Each measurement runs in a process of its own (spawned: a fresh torch, its own
threads), engine and Trainer alternated round after round, so a slow minute of a shared machine hits both.

A run takes `warmup + steps` optimiser steps; the clock runs from the end of the last warm-up step to the end of the
last step (the engine: when fit asks for the next batch, and when it calls evaluate() after its step cap; Trainer:
on_step_end), so both count the same work: fetching and collating each batch, forward, backward, clipping, the
optimiser and schedule steps and their own bookkeeping.
"""
from __future__ import annotations

import multiprocessing as mp
import statistics
import tempfile
import time

import torch

# the hyper-parameters both trainings use (notebook 02's defaults; Trainer's default optimiser is torch's fused
# AdamW, as the engine's is)
HPARAMS = {"lr": 5e-5, "weight_decay": 0.01, "warmup_ratio": 0.1, "clip_norm": 1.0}
SETTINGS = {"engine": "lab engine (lib.training.train.fit), length-grouped, dynamic padding",
            "trainer": "Hugging Face Trainer, group_by_length, dynamic padding",
            "engine-pad-to-max": "lab engine, every batch padded to max_length"}


class _Tally:
    """Examples, real tokens and padded tokens of each batch, in the order the batches were collated."""

    def __init__(self):
        self.batches = []

    def add(self, batch) -> None:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        self.batches.append((ids.shape[0], int(mask.sum()), ids.numel()))

    def rates(self, first: int, n: int, seconds: float) -> dict:
        examples, real, padded = (sum(b[k] for b in self.batches[first:first + n]) for k in range(3))
        return {"seconds": seconds, "steps": n, "examples_per_s": examples / seconds,
                "real_tokens_per_s": real / seconds, "padded_tokens_per_s": padded / seconds,
                "padding_share": 1 - real / padded, "mean_real_len": real / examples}


class _Clocked:
    """The engine's loader, unchanged, noting the time each batch is asked for (= the end of the step before)."""

    def __init__(self, loader, tally: _Tally):
        self.loader, self.tally, self.asked = loader, tally, []

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        batches = iter(self.loader)
        while True:
            self.asked.append(time.perf_counter())  # asked[k]: batch k wanted, step k (counted from 1) done
            batch = next(batches, None)
            if batch is None:
                return
            self.tally.add(batch)
            yield batch


def _model_and_data(model_name: str, max_length: int, data_dir: str):
    from lib.data import semeval
    from lib.models import encoders
    from lib.studies import emotion
    torch.manual_seed(0)
    tr = semeval.load("train", data_dir)
    tok, model = encoders.create_and_prepare_model(model_name, len(emotion.EMOTIONS))
    return tok, model, encoders.Encoded(tok, tr.texts, tr.y, max_length)


def engine_run(model_name: str, warmup: int, steps: int, batch_size: int, max_length: int, data_dir: str = "",
               pad_to_max: bool = False) -> dict:
    """`warmup + steps` steps of lib.training.train.fit; the rates of the last `steps`."""
    from lib.models import encoders
    from lib.running import bench
    from lib.training import train
    tok, model, ds = _model_and_data(model_name, max_length, data_dir)
    tally = _Tally()
    loader = _Clocked(encoders.loader(tok, ds, batch_size, train=True, seed=0,
                                      pad_to_max=max_length if pad_to_max else 0), tally)
    cfg = train.TrainConfig(epochs=1, lr=HPARAMS["lr"], weight_decay=HPARAMS["weight_decay"],
                            warmup_ratio=HPARAMS["warmup_ratio"], clip_norm=HPARAMS["clip_norm"],
                            max_steps=warmup + steps, patience=0, progress=False)
    ended = []

    def evaluate(m):  # called once, right after the step cap
        ended.append(time.perf_counter())
        return {"loss": 0.0, "macro_f1": 0.0}
    hist = train.fit(model, loader, encoders.bce_loss(), evaluate, cfg, log=lambda *_: None)
    assert hist.optimizer_steps == warmup + steps and len(ended) == 1
    r = tally.rates(warmup, steps, ended[0] - loader.asked[warmup])
    r["model_flops_per_token"] = bench.model_flops_per_token(model, r["mean_real_len"])
    return r


def trainer_run(model_name: str, warmup: int, steps: int, batch_size: int, max_length: int,
                data_dir: str = "") -> dict:
    """`warmup + steps` steps of transformers' Trainer with length grouping; the rates of the last `steps`."""
    from transformers import (
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from lib.training import train
    tok, model, ds = _model_and_data(model_name, max_length, data_dir)
    tally, pad = _Tally(), DataCollatorWithPadding(tok, return_tensors="pt")
    step_ends = []

    def collate(features):
        batch = pad(features)
        tally.add(batch)
        return batch

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            step_ends.append(time.perf_counter())
    precision = train.choose_precision(train.TrainConfig())
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, max_steps=warmup + steps,
            learning_rate=HPARAMS["lr"], weight_decay=HPARAMS["weight_decay"], max_grad_norm=HPARAMS["clip_norm"],
            lr_scheduler_type="linear",
            warmup_steps=int(HPARAMS["warmup_ratio"] * (warmup + steps)),  # the engine's rounding of the ratio
            train_sampling_strategy="group_by_length",
            bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not torch.cuda.is_available(),
            report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0)
        Trainer(model=model, args=args, train_dataset=ds, data_collator=collate, processing_class=tok,
                callbacks=[Clock()]).train()
    assert len(step_ends) == warmup + steps
    return tally.rates(warmup, steps, step_ends[-1] - step_ends[warmup - 1])


def _child(setting: str, kw: dict, queue) -> None:
    try:
        if setting == "trainer":
            queue.put(trainer_run(**kw))
        else:
            queue.put(engine_run(**kw, pad_to_max=setting == "engine-pad-to-max"))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
        queue.put({"error": f"{type(e).__name__}: {e}"})


def in_own_process(setting: str, **kw) -> dict:
    """One measurement in a spawned process (its own torch, threads and memory)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(setting, kw, queue))
    proc.start()
    r = queue.get()
    proc.join()
    if "error" in r:
        raise RuntimeError(f"bench setting {setting!r} failed: {r['error']}")
    return {"setting": setting, **r}


def compare(model_name: str, warmup: int, steps: int, batch_size: int, max_length: int, data_dir: str = "",
            rounds: int = 2, run=in_own_process) -> dict:
    """`rounds` x (engine, Trainer), alternated, then the engine padded to max_length once; the ratios of the
    medians of examples/s and of real tokens/s (engine / Trainer: above 1 the engine is faster)."""
    kw = dict(model_name=model_name, warmup=warmup, steps=steps, batch_size=batch_size, max_length=max_length,
              data_dir=data_dir)
    runs = [run(setting, **kw) for _ in range(rounds) for setting in ("engine", "trainer")]
    runs.append(run("engine-pad-to-max", **kw))
    median = {s: statistics.median(r["examples_per_s"] for r in runs if r["setting"] == s) for s in SETTINGS}
    # the timed batches of the two samplers are not equally long (Trainer's first steps stay in one length-sorted
    # mega-batch), so real tokens/s is compared too
    tokens = {s: statistics.median(r["real_tokens_per_s"] for r in runs if r["setting"] == s) for s in SETTINGS}
    return {"model": model_name, "warmup": warmup, "steps": steps, "batch_size": batch_size,
            "max_length": max_length, "rounds": rounds, "runs": runs, "median_examples_per_s": median,
            "ratios": {"engine / Trainer examples/s": median["engine"] / median["trainer"],
                       "engine / Trainer real tokens/s": tokens["engine"] / tokens["trainer"],
                       "engine: dynamic / pad-to-max examples/s": median["engine"] / median["engine-pad-to-max"]}}
