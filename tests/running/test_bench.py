"""lib.running.bench dropout runs its four settings and reports per-step times and their ratios (no speed target here:
speed lives in the benchmark's own output, measured in one run)."""
import pytest

from lib.running import bench


def test_dropout_bench_times_every_setting():
    r = bench.dropout("all-MiniLM-L6-v2", steps=1, batch_size=2, max_length=16)
    assert set(r["seconds_per_step"]) == {"full, checkpoint dropout", "full, dropout 0",
                                          "LoRA every dense layer, LoRA dropout 0.1", "LoRA every dense layer, LoRA dropout 0"}
    assert all(v > 0 for v in r["seconds_per_step"].values())
    s = r["seconds_per_step"]
    assert r["ratios"]["full: dropout 0 speed-up"] == pytest.approx(s["full, checkpoint dropout"] / s["full, dropout 0"])
