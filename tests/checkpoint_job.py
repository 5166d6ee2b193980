"""A small resumable training for the checkpoint tests: a dropout model (its masks draw from the torch RNG) on a
shuffled DataLoader (a new order every epoch from its own generator), 3 epochs of 4 batches, a checkpoint every
3 steps. `build` gives its pieces to call lib.training.train.fit in-process; run as a script it trains in a process of its
own and writes the result as JSON, so a test can kill it with SIGKILL in the middle of a save:

    python tests/checkpoint_job.py FOLDER OUT.json [KILL_IN_SAVE]   # KILL_IN_SAVE=N: SIGKILL during the N-th save
"""
import json
import os
import signal
import sys

import torch

from lib.training import train


def build(folder, lr: float = 0.05, crash_at: int | None = None, n: int = 32, save_every: int = 3):
    """(model, loader, loss_fn, evaluate, cfg); loss_fn raises KeyboardInterrupt at its crash_at-th call."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(n, 1, generator=gen)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True,
                                         generator=torch.Generator().manual_seed(2))
    calls = {"n": 0}

    def loss_fn(m, b):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt("interrupted")
        return torch.nn.functional.mse_loss(m(b[0]), b[1])

    def evaluate(m):
        loss = float(torch.nn.functional.mse_loss(m(x), y))
        return {"loss": loss, "neg": -loss}

    cfg = train.TrainConfig(epochs=3, lr=lr, monitor="neg", patience=0, checkpoint_dir=str(folder),
                            save_every=save_every, resume=True, progress=False, scheduler="linear")
    return model, loader, loss_fn, evaluate, cfg


def result(hist, model) -> dict:
    """What a test compares between runs: every step's loss, every evaluation, the final weights."""
    return {"steps": [list(s) for s in hist.steps], "evals": hist.evals, "resumed_from_step": hist.resumed_from_step,
            "weights": [p.detach().flatten().tolist() for p in model.parameters()]}


def kill_in_save(n: int) -> None:
    """SIGKILL this process in the n-th checkpoint save, after the model's state was written and before the rest."""
    import accelerate.accelerator as acc_module
    original, saves = acc_module.save_custom_state, {"n": 0}

    def save_custom_state(obj, path, index=0, **kw):
        if index == 0:
            saves["n"] += 1
        if saves["n"] == n and index == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(obj, path, index, **kw)
    acc_module.save_custom_state = save_custom_state


if __name__ == "__main__":
    folder, out = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        kill_in_save(int(sys.argv[3]))
    model, loader, loss_fn, evaluate, cfg = build(folder)
    hist = train.fit(model, loader, loss_fn, evaluate, cfg, log=print)
    with open(out, "w") as f:
        json.dump(result(hist, model), f)
