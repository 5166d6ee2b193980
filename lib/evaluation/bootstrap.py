"""Intervals for the scorecard: a bootstrap confidence interval over evaluated examples for one score, a paired
bootstrap (the same resampled examples for both arms) for a difference, and the verdict a claim gets from them.

A score is a function of one or more *samples* of examples (a macro-F1 over tweets; 06's overall over three task
dev sets, each resampled on its own). The bootstrap resamples example indices with scipy.stats.bootstrap
(percentile intervals: the statistics here are not smooth enough in small smoke samples for BCa's jackknife).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from lib.core.errors import LabError

LEVEL = 0.95          # confidence level of every interval
RESAMPLES = 1000      # bootstrap resamples: the interval ends move by ~0.002 on 1000 tweets between seeds

REPRODUCED, CONTRADICTED, TOO_CLOSE, NOT_RUN = "reproduced", "contradicted", "too close to call", "not run"


@dataclass
class Interval:
    value: float      # the statistic on all examples
    low: float
    high: float
    n: dict           # examples per sample

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def text(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def interval(statistic: Callable[..., float], sizes: dict, seed: int = 0, level: float = LEVEL,
             resamples: int = RESAMPLES) -> Interval:
    """Bootstrap CI of `statistic(**{sample: index array})` where `sizes` = {sample name: number of examples};
    each sample is resampled independently (examples of different dev sets are not paired with each other)."""
    names = list(sizes)
    if not names or any(int(sizes[k]) < 2 for k in names):
        raise LabError(f"bootstrap: every sample needs at least 2 examples; got {sizes}")
    full = statistic(**{k: np.arange(sizes[k]) for k in names})
    data = tuple(np.arange(sizes[k]) for k in names)
    res = stats.bootstrap(data, lambda *idx: statistic(**dict(zip(names, idx))), n_resamples=resamples,
                          paired=False, vectorized=False, confidence_level=level, method="percentile",
                          random_state=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isnan(lo) or math.isnan(hi):  # every resample gave the same value (scipy reports a degenerate interval)
        lo = hi = float(full)
    return Interval(float(full), lo, hi, {k: int(v) for k, v in sizes.items()})


def paired_difference(stat_a: Callable[..., float], stat_b: Callable[..., float], sizes: dict, seed: int = 0,
                      level: float = LEVEL, resamples: int = RESAMPLES) -> Interval:
    """CI of stat_b - stat_a, both computed on the same resampled examples each time (a paired bootstrap)."""
    return interval(lambda **idx: stat_b(**idx) - stat_a(**idx), sizes, seed, level, resamples)


def direction_verdict(diff: Interval, direction: int) -> str:
    """A claim that b - a has sign `direction` (+1 / -1): reproduced when the interval excludes 0 on that side,
    contradicted when it excludes 0 on the other, else too close to call."""
    if diff.low > 0 or diff.high < 0:
        return REPRODUCED if (diff.low > 0) == (direction > 0) else CONTRADICTED
    return TOO_CLOSE


def equivalence_verdict(diff: Interval, margin: float) -> str:
    """A claim that a and b are about equal (|b - a| <= margin): reproduced when the whole interval lies inside the
    margin, contradicted when it lies wholly outside, else too close to call."""
    if -margin <= diff.low and diff.high <= margin:
        return REPRODUCED
    if diff.low > margin or diff.high < -margin:
        return CONTRADICTED
    return TOO_CLOSE


def value_verdict(ci: Interval, study: float, tolerance: float = 0.0) -> str:
    """A claim that a score is the study's number: reproduced when the interval (widened by `tolerance`, for numbers
    the study rounded) holds it, contradicted when it does not."""
    return REPRODUCED if ci.low - tolerance <= study <= ci.high + tolerance else CONTRADICTED


def point_verdict(diff: float, direction: int, relative_margin: float = 0.1, base: float = 1.0) -> str:
    """A claim on a single measurement with no examples to resample (a training time): its sign decides only when
    the change is larger than `relative_margin` of `base`; else too close to call."""
    if abs(diff) <= relative_margin * abs(base):
        return TOO_CLOSE
    return REPRODUCED if (diff > 0) == (direction > 0) else CONTRADICTED
