"""A tiny training job for the multiprocess tier, run as `accelerate launch --cpu --num_processes N tests/ddp_job.py OUT
PER_RANK_BATCH [CHECKPOINT_DIR]`: the same data and global batch whatever N; writes the final weights, history and a
distributed prediction (from the main process) to OUT as JSON. With CHECKPOINT_DIR it saves every 2 steps there and
resumes from what it finds."""
import json
import sys

import torch

from lib.core.distributed import distributed_map
from lib.training import train


def main(out: str, per_rank_batch: int, checkpoint_dir: str = ""):
    from accelerate import PartialState
    acc = PartialState(cpu=True)
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.1
    model = torch.nn.Linear(3, 1)
    torch.manual_seed(1)
    torch.nn.init.zeros_(model.weight)
    # batches in the order a single process with batch per_rank_batch*N would see them, split per rank: global
    # batch k is made of micro-batches k*N .. k*N+N-1 of size per_rank_batch
    batches = [(x[i:i + per_rank_batch], y[i:i + per_rank_batch]) for i in range(0, 64, per_rank_batch)]

    def loss_fn(m, b):
        return torch.nn.functional.mse_loss(m(b[0]), b[1])

    def evaluate(m):
        with torch.no_grad():
            return {"loss": float(torch.nn.functional.mse_loss(m(x), y)), "neg_mse": -float(
                torch.nn.functional.mse_loss(m(x), y))}

    hist = train.fit(model, batches, loss_fn, evaluate,
                     train.TrainConfig(epochs=3, lr=0.05, scheduler="none", clip_norm=0, monitor="neg_mse",
                                       patience=0, progress=False, weight_decay=0.0, checkpoint_dir=checkpoint_dir,
                                       save_every=2 if checkpoint_dir else 0, resume=bool(checkpoint_dir)),
                     log=lambda *_: None)
    preds = distributed_map(lambda i: i * i, list(range(13)))  # 13: an uneven share on 2 ranks
    if acc.is_main_process:
        plain = model  # fit trains the caller's module in place (DDP wraps it, sharing its parameters)
        with open(out, "w") as f:
            json.dump({"weight": plain.weight.detach().flatten().tolist(), "bias": plain.bias.item(),
                       "best": hist.best["neg_mse"], "steps": hist.optimizer_steps, "procs": hist.num_processes,
                       "preds": preds, "resumed_from_step": hist.resumed_from_step}, f)
    end(acc)


def end(acc):
    """Tear the gloo group down, then leave without the interpreter's teardown: its static destructors can still meet a
    gloo thread and abort a rank ("terminate called without an active exception", SIGABRT) after all its work is
    done, as CI saw at stops 25 and 36 even after destroy_process_group."""
    import os
    acc.wait_for_everyone()
    acc.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
