"""Encoder fine-tuning helpers (lib/models/encoders.py): the length-grouped batch sampler, on hand-made lengths."""
import numpy as np

from lib.models import encoders

LENGTHS = [3 + (i * 37) % 61 for i in range(103)]  # 103 lengths from 3 to 63, in no particular order


def _epochs(sampler, n=2):
    return [list(sampler) for _ in range(n)]


def test_length_grouped_batches_cover_every_index_once_in_batches_of_batch_size():
    s = encoders.LengthGroupedBatches(LENGTHS, 8, seed=0, mega=4)
    assert len(s) == 13  # 103 = 12 x 8 + 7
    for batches in _epochs(s, 3):
        assert sorted(i for b in batches for i in b) == list(range(103))
        sizes = sorted(len(b) for b in batches)
        assert sizes == [7] + [8] * 12 and len(batches) == len(s)


def test_one_mega_batch_gives_the_length_sorted_groups():
    # 12 distinct lengths, batch size 4, one mega-batch holds them all: the batches are exactly the 4 longest, the
    # next 4 and the 4 shortest (in a random order of batches)
    lengths = [30, 5, 12, 41, 8, 27, 19, 2, 35, 16, 23, 10]
    by_len = sorted(range(12), key=lambda i: -lengths[i])  # 3 (41), 8 (35), 0 (30), 5 (27), 10 (23), 6 (19), ...
    expected = {frozenset(by_len[k:k + 4]) for k in (0, 4, 8)}
    assert expected == {frozenset({3, 8, 0, 5}), frozenset({10, 6, 9, 2}), frozenset({11, 4, 1, 7})}
    for batches in _epochs(encoders.LengthGroupedBatches(lengths, 4, seed=1, mega=50), 3):
        assert {frozenset(b) for b in batches} == expected


def test_batches_are_length_homogeneous_compared_to_random():
    lengths = np.array(LENGTHS)
    spread = lambda batches: np.mean([np.ptp(lengths[b]) for b in batches])  # noqa: E731
    rng = np.random.default_rng(0)
    random = np.mean([spread(np.array_split(rng.permutation(103), 13)) for _ in range(20)])
    grouped = spread(list(encoders.LengthGroupedBatches(LENGTHS, 8, seed=0, mega=4)))
    # a random batch of 8 spans most of the 3..63 range (~47); sorted inside mega-batches of 32 a batch holds a
    # quarter of one (~14, plus the longest length of all moved to the front)
    assert random > 40 and grouped < random / 2.5


def test_each_epoch_a_new_order_and_the_same_seed_the_same_epochs():
    first, second = _epochs(encoders.LengthGroupedBatches(LENGTHS, 8, seed=7, mega=4))
    assert first != second
    assert _epochs(encoders.LengthGroupedBatches(LENGTHS, 8, seed=7, mega=4)) == [first, second]
    assert _epochs(encoders.LengthGroupedBatches(LENGTHS, 8, seed=8, mega=4))[0] != first
    assert list(encoders.LengthGroupedBatches([], 8)) == []
