"""What every layer needs of a launch on several processes (run_all.sh --num-processes N, torchrun, accelerate
launch): `distributed_map` spreads a prediction over the ranks and gathers each result exactly once; `world_size`;
`bind_device` (each rank on its own GPU). With one process each is the plain single-process behaviour."""
from __future__ import annotations

import os


def world_size() -> int:
    """The processes of this launch (torchrun's WORLD_SIZE; 1 when not launched)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def bind_device() -> None:
    """On a GPU machine, make this rank's GPU (cuda:LOCAL_RANK) the current device before any model is loaded:
    quantised loads go to the current device. One process: nothing to do."""
    import torch
    local = os.environ.get("LOCAL_RANK")
    if local is not None and world_size() > 1 and torch.cuda.is_available():
        torch.cuda.set_device(int(local))


def distributed_map(fn, items: list) -> list:
    """[fn(x) for x in items], spread over the processes of a multi-process launch and gathered back in order on
    every rank: each item is computed exactly once, however uneven the last share. One process: a plain map. Every
    rank must call it at the same point with the same items (the lab's notebooks run whole on every rank, and
    train.fit evaluates on every rank)."""
    import torch
    from accelerate import PartialState
    if world_size() == 1:
        return [fn(x) for x in items]
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes == 1:
        return [fn(x) for x in items]
    from accelerate.utils import gather_object
    mine = [(i, fn(items[i])) for i in range(state.process_index, len(items), state.num_processes)]
    gathered = gather_object(mine)
    return [r for _, r in sorted(gathered, key=lambda t: t[0])]
