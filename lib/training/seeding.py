"""One seed for every random number generator a run draws from."""
from __future__ import annotations


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (CPU and every GPU) seeded alike: what transformers.set_seed does, without its
    import (transformers.trainer_utils pulls in peft and bitsandbytes: 10-12 s of every notebook's first cell here,
    also in notebooks that use neither)."""
    import random

    import numpy as np
    import sklearn.model_selection  # noqa: F401 - its import draws from Python's `random` (measured): imported before
    import torch  # seeding, as transformers.set_seed's imports did, so the draws after are the same
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
