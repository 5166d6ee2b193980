"""Benchmarks, measured in one run on the machine at hand (ratios, not absolute targets in tests).

    python -m lib.running.bench encoder [--model all-MiniLM-L6-v2] [--warmup 5] [--steps 40] [--batch-size 32]
                                [--max-length 128] [--rounds 2]

encoder: training throughput of the lab's engine (lib.training.train.fit) against Hugging Face Trainer with length grouping,
same model, E-c training tweets, batch size and steps, each in its own process, alternated; the ratio of examples/s
(engine / Trainer); the engine with every batch padded to max_length as a second reference (lib.running.bench_encoder);
and the machine's matmul FLOP/s vs the engine's achieved model FLOP/s (6 x non-embedding parameters x real tokens,
plus attention).
decoder: LoRA training throughput of a decoder with a classification head (notebook 03's path) with 4-bit NF4 vs no
quantisation, and with vs without gradient checkpointing; each setting in its own process, so its peak memory
(resident set, reset after loading; plus CUDA peak on a GPU) is its own.

    python -m lib.running.bench decoder [--model gemma-3-270m] [--steps 6] [--batch-size 8] [--max-length 64]

dropout: seconds per training step of notebook 05's span model (forward, backward, AdamW) with the checkpoint's
dropout vs every dropout 0 (registry.dropout_overrides), and LoRA on every dense layer with LoRA dropout 0.1 vs 0; the
reason 02 and 05 train with DROPOUT 0 on the cpu profile.

    python -m lib.running.bench dropout [--model all-MiniLM-L6-v2] [--steps 5] [--batch-size 16] [--max-length 180]

Run it on a quiet machine: a second busy process slows torch several-fold.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def matmul_flops(n: int = 1024, repeats: int = 20, dtype=torch.float32) -> float:
    """Measured dense matmul FLOP/s (best of `repeats`) on the current device."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if dev == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def model_flops_per_token(model, seq_len: float) -> float:
    """Training FLOPs per token: 6 x non-embedding parameters + attention (6 x layers x seq x hidden x 2)."""
    n = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)
    cfg = model.config
    attn = 6 * cfg.num_hidden_layers * 2 * seq_len * cfg.hidden_size
    return 6 * n + attn


def _train_steps(model, tok, ds, steps, batch_size, pad_to_max, seed, lr=1e-5):
    from lib.models import encoders
    dl = encoders.loader(tok, ds, batch_size, train=True, seed=seed, pad_to_max=pad_to_max)
    loss_fn = encoders.bce_loss()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    it = iter(dl)
    real_tokens = padded_tokens = examples = 0
    t = None
    for i in range(steps + 2):  # the first 2 steps warm up and are not timed
        batch = next(it)
        if i == 2:
            t = time.perf_counter()
        loss = loss_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i >= 2:
            real_tokens += int(batch["attention_mask"].sum())
            padded_tokens += batch["input_ids"].numel()
            examples += batch["input_ids"].shape[0]
    sec = time.perf_counter() - t
    return {"seconds": sec, "examples_per_s": examples / sec, "real_tokens_per_s": real_tokens / sec,
            "padded_tokens_per_s": padded_tokens / sec, "padding_share": 1 - real_tokens / padded_tokens,
            "mean_real_len": real_tokens / examples}


def encoder(model_name: str, warmup: int, steps: int, batch_size: int, max_length: int, data_dir: str = "",
            rounds: int = 2) -> dict:
    """lib.running.bench_encoder.compare (the engine vs Trainer, and pad-to-max), plus the machine's matmul FLOP/s against
    the model FLOP/s the engine's training step achieves."""
    from lib.running import bench_encoder
    r = bench_encoder.compare(model_name, warmup, steps, batch_size, max_length, data_dir, rounds)
    engine = [x for x in r["runs"] if x["setting"] == "engine"]
    achieved = statistics.median(x["real_tokens_per_s"] * x["model_flops_per_token"] for x in engine)
    peak = matmul_flops()
    return {**r, "threads": torch.get_num_threads(), "matmul_flops": peak, "achieved_model_flops": achieved,
            "mfu_vs_matmul": achieved / peak}


def _peak_rss_mb() -> float:
    """Peak resident set (VmHWM) of this process in MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _reset_peak_rss() -> None:
    """Linux: reset VmHWM to the current resident set (writing 5 to clear_refs), so later peaks are training's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _decoder_setting(model_name, quantization, checkpointing, steps, batch_size, max_length, data_dir, queue):
    """One setting, in a child process: load, reset the memory peak, time `steps` LoRA training steps."""
    try:
        from lib.data import semeval
        from lib.models import decoders, encoders
        from lib.studies import emotion
        torch.manual_seed(0)
        tr = semeval.load("train", data_dir)
        tok, model = decoders.create_and_prepare_model(model_name, "classifier", len(emotion.EMOTIONS), quantization,
                                                       gradient_checkpointing=checkpointing)
        ds = encoders.Encoded(tok, tr.texts, tr.y, max_length)
        rss_loaded = _peak_rss_mb()
        _reset_peak_rss()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        r = _train_steps(model, tok, ds, steps, batch_size, 0, 0, lr=2e-4)
        r.update(quantization=quantization, gradient_checkpointing=checkpointing, peak_rss_mb=_peak_rss_mb(),
                 peak_rss_loading_mb=rss_loaded,
                 cuda_peak_mb=torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None)
        queue.put(r)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which prints it
        queue.put({"quantization": quantization, "gradient_checkpointing": checkpointing, "error": repr(e)})


def decoder(model_name: str, steps: int, batch_size: int, max_length: int, data_dir: str = "",
            settings=(("4bit", True), ("4bit", False), ("none", True), ("none", False))) -> dict:
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    rows = []
    for quantization, checkpointing in settings:
        q = ctx.Queue()
        p = ctx.Process(target=_decoder_setting,
                        args=(model_name, quantization, checkpointing, steps, batch_size, max_length, data_dir, q))
        p.start()
        rows.append(q.get())
        p.join()
    by = {(r["quantization"], r["gradient_checkpointing"]): r for r in rows}
    ratio = {}
    for ck in (True, False):
        a, b = by.get(("4bit", ck), {}), by.get(("none", ck), {})
        if "real_tokens_per_s" in a and "real_tokens_per_s" in b:
            ratio[f"4bit_vs_none_tokens_per_s_ckpt_{'on' if ck else 'off'}"] = a["real_tokens_per_s"] / b["real_tokens_per_s"]
    for qn in ("4bit", "none"):
        a, b = by.get((qn, True), {}), by.get((qn, False), {})
        if "real_tokens_per_s" in a and "real_tokens_per_s" in b:
            ratio[f"ckpt_on_vs_off_tokens_per_s_{qn}"] = a["real_tokens_per_s"] / b["real_tokens_per_s"]
    return {"model": model_name, "steps": steps, "batch_size": batch_size, "max_length": max_length,
            "threads": torch.get_num_threads(), "settings": rows, "ratios": ratio}


def dropout(model_name: str, steps: int, batch_size: int, max_length: int) -> dict:
    """Median seconds per span-loss training step on random token ids (batch_size x max_length), per setting."""
    from lib.models import qa
    ids = torch.randint(1000, 20000, (batch_size, max_length), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
             "start_positions": torch.randint(0, max_length, (batch_size,)),
             "end_positions": torch.randint(0, max_length, (batch_size,))}
    every = ["query", "key", "value", "dense"]
    settings = {"full, checkpoint dropout": ("full", {}), "full, dropout 0": ("full", {"dropout": 0.0}),
                "LoRA every dense layer, LoRA dropout 0.1": ("lora", {"lora_targets": every, "lora_dropout": 0.1}),
                "LoRA every dense layer, LoRA dropout 0": ("lora", {"lora_targets": every, "lora_dropout": 0.0})}
    out = {}
    for name, (method, kw) in settings.items():
        torch.manual_seed(0)
        m = qa.create_model(model_name, method, **kw)
        m.train()
        opt = torch.optim.AdamW([q for q in m.parameters() if q.requires_grad], lr=1e-5)
        times = []
        for _ in range(steps + 2):  # two warm-up steps
            t = time.perf_counter()
            qa.span_loss(m, batch).backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - t)
        out[name] = sorted(times[2:])[len(times[2:]) // 2]
        del m, opt
    ratios = {"full: dropout 0 speed-up": out["full, checkpoint dropout"] / out["full, dropout 0"],
              "LoRA: LoRA dropout 0 speed-up": out["LoRA every dense layer, LoRA dropout 0.1"]
              / out["LoRA every dense layer, LoRA dropout 0"]}
    return {"model": model_name, "steps": steps, "batch_size": batch_size, "max_length": max_length,
            "threads": torch.get_num_threads(), "seconds_per_step": out, "ratios": ratios}


def _finish(r: dict, json_path: str) -> int:
    """Print a bench's ratios (when it has them), write its results to `json_path` (when given); exit status 0."""
    for k, v in r.get("ratios", {}).items():
        print(f"  {k}: {v:.2f}x")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(r, f, indent=2)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.running.bench")
    sub = ap.add_subparsers(dest="what", required=True)
    for what, helptext, model, steps, batch, length in [
            ("encoder", "encoder training: the lab's engine vs Trainer (group_by_length), and pad-to-max",
             "all-MiniLM-L6-v2", 40, 32, 128),
            ("decoder", "decoder LoRA training: 4-bit vs none, gradient checkpointing on vs off", "gemma-3-270m",
             6, 8, 64),
            ("dropout", "05's span-model training step: checkpoint dropout vs 0, LoRA dropout 0.1 vs 0",
             "all-MiniLM-L6-v2", 5, 16, 180)]:
        p = sub.add_parser(what, help=helptext)
        p.add_argument("--model", default=model)
        p.add_argument("--steps", type=int, default=steps)
        p.add_argument("--batch-size", type=int, default=batch)
        p.add_argument("--max-length", type=int, default=length)
        p.add_argument("--data-dir", default="")
        p.add_argument("--json", default="", help="also write the results to this file")
        if what == "encoder":
            p.add_argument("--warmup", type=int, default=5, help="untimed steps before the timed ones")
            p.add_argument("--rounds", type=int, default=2, help="engine, Trainer pairs (the median is compared)")
    a = ap.parse_args(argv)
    if a.what == "dropout":
        r = dropout(a.model, a.steps, a.batch_size, a.max_length)
        print(f"{r['model']} span model, batch {r['batch_size']} x {r['max_length']} tokens, median of {r['steps']} "
              f"steps, {r['threads']} threads")
        for k, v in r["seconds_per_step"].items():
            print(f"  {k}: {v:.2f} s a step")
        return _finish(r, a.json)
    if a.what == "decoder":
        r = decoder(a.model, a.steps, a.batch_size, a.max_length, a.data_dir)
        print(f"{r['model']} LoRA classifier, batch {r['batch_size']}, max_length {r['max_length']}, {r['steps']} timed "
              f"steps, {r['threads']} threads")
        for s in r["settings"]:
            name = f"  {s['quantization']:>4}, checkpointing {'on ' if s['gradient_checkpointing'] else 'off'}"
            if "error" in s:
                print(f"{name}: failed: {s['error']}")
            else:
                print(f"{name}: {s['real_tokens_per_s']:.0f} tokens/s, {s['examples_per_s']:.2f} examples/s, "
                      f"peak RSS {s['peak_rss_mb']:.0f} MB in training ({s['peak_rss_loading_mb']:.0f} MB by loading)"
                      + (f", CUDA peak {s['cuda_peak_mb']:.0f} MB" if s["cuda_peak_mb"] else ""))
        return _finish(r, a.json)
    r = encoder(a.model, a.warmup, a.steps, a.batch_size, a.max_length, a.data_dir, a.rounds)
    _print_encoder(r)
    return _finish(r, a.json)


def _print_encoder(r: dict) -> None:
    from lib.running.bench_encoder import SETTINGS
    print(f"{r['model']}, batch {r['batch_size']}, {r['steps']} timed steps after {r['warmup']} warm-up steps, "
          f"{r['threads']} threads; each run in its own process, in this order:")
    for x in r["runs"]:
        print(f"  {SETTINGS[x['setting']]}: {x['examples_per_s']:.1f} examples/s, {x['real_tokens_per_s']:.0f} real "
              f"tokens/s (padding {100 * x['padding_share']:.1f}%)")
    m = r["median_examples_per_s"]
    print(f"  median examples/s: engine {m['engine']:.1f}, Trainer {m['trainer']:.1f}, engine padded to max_length "
          f"{r['max_length']} {m['engine-pad-to-max']:.1f}")
    print(f"  matmul: {r['matmul_flops'] / 1e9:.1f} GFLOP/s; the engine's training step achieves "
          f"{r['achieved_model_flops'] / 1e9:.1f} GFLOP/s of model FLOPs = {100 * r['mfu_vs_matmul']:.0f}% of matmul")

if __name__ == "__main__":
    raise SystemExit(main())
