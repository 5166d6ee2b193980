"""Multitask training schedules: which examples of each task one optimiser step takes (`MultitaskBatches`).

* sequential: per epoch, all SST batches, then all PARA batches, then all STS batches (study 002 baseline).
* round_robin / round_robin_norm: K = ceil(total / (batch_size * tasks)) steps per epoch; every task's shuffled
  examples are cut into K nearly equal chunks, so each step holds every task in proportion to its size and every
  example is visited exactly once per epoch (the two differ in how the loss weighs the tasks, see
  lib/studies/multitask.py MultitaskLoss).
* summed: each step one batch of batch_size from every task, losses (means) summed; an epoch is ceil(largest / B)
  steps and the smaller tasks are cycled (re-shuffled when used up) (study 003's multi-task fine-tuning).
"""
from __future__ import annotations

import math

import numpy as np

from lib.core.errors import LabError

SCHEDULES = ("sequential", "round_robin", "round_robin_norm", "summed")



class MultitaskBatches:
    """Iterable of optimiser steps for lib.training.train.fit: each step is {task: np.ndarray of example indices}.
    Re-shuffled at every pass (epoch).

    With `lengths` ({task: words per example}) the sequential and round-robin schedules draw each task's pieces
    length-grouped (lib.models.encoders.length_grouped_order: mega-batches sorted by length) and visit the pieces in a
    shuffled order, each task on its own: a random batch of SST sentences pads to ~2.2x its words, a grouped one to
    ~1.06x (the cpu run's five variants trained in 337 s instead of 465). Every example is still visited once per epoch; `summed` stays random."""

    def __init__(self, sizes: dict, schedule: str, batch_size: int, seed: int = 0, lengths: dict | None = None):
        if schedule not in SCHEDULES:
            raise LabError(f"schedule {schedule!r}: expected {' | '.join(SCHEDULES)}")
        self.sizes = {t: int(n) for t, n in sizes.items() if n > 0}
        self.schedule, self.bs = schedule, batch_size
        self.rng = np.random.default_rng(seed)
        self.lengths = None if lengths is None else {t: np.asarray(lengths[t]) for t in self.sizes}
        if self.lengths is not None and any(len(self.lengths[t]) != n for t, n in self.sizes.items()):
            raise LabError(f"lengths {({t: len(v) for t, v in self.lengths.items()})} do not match sizes {self.sizes}")

    def _pieces(self, t: str, perm: np.ndarray, k: int) -> list:
        """Task t's examples cut into k nearly equal pieces: contiguous parts of the random permutation, or, with
        lengths, of the length-grouped order, the pieces then shuffled."""
        if self.lengths is None:
            return np.array_split(perm, k)
        from lib.models.encoders import length_grouped_order
        order = np.asarray(length_grouped_order(self.lengths[t], -(-self.sizes[t] // k), self.rng))
        parts = np.array_split(order, k)
        return [parts[j] for j in self.rng.permutation(k)]

    def __len__(self):
        n = self.sizes
        if self.schedule == "sequential":
            return sum(math.ceil(v / self.bs) for v in n.values())
        if self.schedule == "summed":
            return math.ceil(max(n.values()) / self.bs)
        return max(1, math.ceil(sum(n.values()) / (self.bs * len(n))))

    def __iter__(self):
        perm = {t: self.rng.permutation(n) for t, n in self.sizes.items()}
        if self.schedule == "sequential":
            for t, n in self.sizes.items():
                for piece in self._pieces(t, perm[t], math.ceil(n / self.bs)):
                    yield {t: piece}
        elif self.schedule == "summed":
            pos = dict.fromkeys(self.sizes, 0)
            for _ in range(len(self)):
                step = {}
                for t, n in self.sizes.items():
                    take = []
                    while len(take) < min(self.bs, n):
                        if pos[t] >= n:
                            perm[t], pos[t] = self.rng.permutation(n), 0
                        k = min(self.bs - len(take), n - pos[t])
                        take.extend(perm[t][pos[t]:pos[t] + k])
                        pos[t] += k
                    step[t] = np.asarray(take)
                yield step
        else:
            k = len(self)
            chunks = {t: self._pieces(t, perm[t], k) for t in self.sizes}
            for i in range(k):
                yield {t: chunks[t][i] for t in self.sizes}
