"""Small deterministic trainings through lib.training.train.fit that exercise every branch of the loop (shuffled loader with
its own generator, dropout drawing from the torch RNG, gradient accumulation with a partial last group, learning-rate
groups, clipping, the three schedules, evaluation every N steps, early stopping, the step cap). Their histories are
pinned in tests/expected_engine_histories.json, so a change to the engine that moves any number shows up.

    python tests/engine_scenarios.py OUT.json   # writes the histories (how the pins were made)
"""
import json
import sys

import torch

from lib.training import train

SCENARIOS = {
    "accumulate-groups-eval-every": dict(epochs=3, lr=0.05, scheduler="linear", warmup_ratio=0.2, grad_accum=2,
                                         lr_groups={"2.": 0.1}, eval_every=2, patience=2, monitor="neg"),
    "cosine-step-cap": dict(epochs=4, lr=0.05, scheduler="cosine", max_steps=5, patience=0, monitor="neg"),
    "plateau-early-stop": dict(epochs=8, lr=0.3, scheduler="plateau", patience=1, monitor="loss", mode="min",
                               clip_norm=0.5),
}


def run(name: str) -> dict:
    """One scenario from a fixed seed: its history's losses, evaluations and best, and the final weights."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    x = torch.randn(40, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(40, 1)
    data = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True,
                                         generator=torch.Generator().manual_seed(3))

    def loss_fn(m, b):
        return torch.nn.functional.mse_loss(m(b[0]), b[1])

    def evaluate(m):
        loss = float(torch.nn.functional.mse_loss(m(x[:16]), y[:16]))
        return {"loss": loss, "neg": -loss}

    cfg = train.TrainConfig(**SCENARIOS[name], progress=False)
    hist = train.fit(model, loader, loss_fn, evaluate, cfg, log=lambda *_: None)
    return {"steps": [list(s) for s in hist.steps], "evals": hist.evals, "best": hist.best,
            "stopped_early": hist.stopped_early, "optimizer_steps": hist.optimizer_steps,
            "weights": [p.detach().flatten().tolist() for p in model.parameters()]}


if __name__ == "__main__":
    with open(sys.argv[1], "w") as f:
        json.dump({name: run(name) for name in SCENARIOS}, f, indent=1)
