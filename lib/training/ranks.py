"""Several processes training together (torchrun / accelerate launch): which batches are this rank's, and the main
process's objects shared with every rank. With one process both are the identity. (What every layer needs of a
multi-process launch, distributed_map among it, is in lib.core.distributed.)"""
from __future__ import annotations


def shard(batches, acc) -> list:
    """This rank's batches: every num_processes-th one, the same count on every rank (a short tail is dropped, so
    no rank waits at a gradient sync that never comes). One process: all batches, in order."""
    n = acc.num_processes
    if n == 1:
        return batches if hasattr(batches, "__len__") else list(batches)
    batches = list(batches)
    usable = len(batches) - len(batches) % n
    return batches[acc.process_index:usable:n]


def broadcast(obj, acc):
    """The main process's `obj` on every rank (one process: `obj`)."""
    if acc.num_processes == 1:
        return obj
    from accelerate.utils import broadcast_object_list
    return broadcast_object_list([obj])[0]
