"""lib.running.bench: the dropout bench runs its four settings and reports per-step times and their ratios; the encoder bench
times lib.training.train.fit and Trainer alike and compares them (no speed target here: speed lives in the benchmark's own
output, measured in one run)."""
import pytest

from lib.running import bench


def test_dropout_bench_times_every_setting():
    r = bench.dropout("all-MiniLM-L6-v2", steps=1, batch_size=2, max_length=16)
    assert set(r["seconds_per_step"]) == {"full, checkpoint dropout", "full, dropout 0",
                                          "LoRA every dense layer, LoRA dropout 0.1", "LoRA every dense layer, LoRA dropout 0"}
    assert all(v > 0 for v in r["seconds_per_step"].values())
    s = r["seconds_per_step"]
    assert r["ratios"]["full: dropout 0 speed-up"] == pytest.approx(s["full, checkpoint dropout"] / s["full, dropout 0"])


def test_encoder_bench_alternates_engine_and_trainer_and_compares_their_medians():
    from lib.running import bench_encoder
    order = []
    speed = {"engine": iter([60.0, 64.0]), "trainer": iter([50.0, 70.0]), "engine-pad-to-max": iter([20.0])}

    def fake(setting, **kw):
        order.append(setting)
        v = next(speed[setting])
        return {"setting": setting, "examples_per_s": v, "real_tokens_per_s": 40 * v}
    r = bench_encoder.compare("m", 5, 40, 32, 128, rounds=2, run=fake)
    assert order == ["engine", "trainer", "engine", "trainer", "engine-pad-to-max"]
    assert r["ratios"]["engine / Trainer examples/s"] == pytest.approx(62.0 / 60.0)
    assert r["ratios"]["engine / Trainer real tokens/s"] == pytest.approx(62.0 / 60.0)
    assert r["ratios"]["engine: dynamic / pad-to-max examples/s"] == pytest.approx(62.0 / 20.0)


def test_encoder_bench_times_train_fit_itself_and_trainer_on_the_same_batches(data_dir, monkeypatch):
    """The engine's number comes from lib.training.train.fit (not a loop of the bench's own), over exactly the timed steps;
    Trainer trains the same number of examples; both group by length, so both pad little."""
    from lib.running import bench_encoder
    from lib.training import train
    calls = []
    real_fit = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    kw = dict(model_name="all-MiniLM-L6-v2", warmup=1, steps=2, batch_size=4, max_length=128, data_dir=str(data_dir))
    engine, trainer = bench_encoder.engine_run(**kw), bench_encoder.trainer_run(**kw)
    assert calls == [1]
    for r in (engine, trainer):
        assert r["steps"] == 2 and r["examples_per_s"] * r["seconds"] == pytest.approx(8)
        assert r["padding_share"] < 0.3
    padded = bench_encoder.engine_run(**kw, pad_to_max=True)
    assert padded["padding_share"] > 0.5


def test_the_encoder_command_runs_the_engine_against_trainer_and_prints_the_ratio(monkeypatch, capsys):
    """`python -m lib.running.bench encoder` is wired to bench_encoder.compare (the engine vs Trainer), not to a loop of
    its own, and prints the engine / Trainer ratio."""
    from lib.running import bench_encoder
    seen = {}

    def fake_compare(model, warmup, steps, batch, length, data_dir, rounds):
        seen.update(model=model, warmup=warmup, steps=steps, rounds=rounds)
        runs = [{"setting": s, "examples_per_s": v, "real_tokens_per_s": 40 * v, "padding_share": 0.1,
                 "model_flops_per_token": 1e6} for s, v in (("engine", 66.0), ("trainer", 60.0),
                                                            ("engine-pad-to-max", 22.0))]
        return {"model": model, "warmup": warmup, "steps": steps, "batch_size": batch, "max_length": length,
                "rounds": rounds, "runs": runs,
                "median_examples_per_s": {"engine": 66.0, "trainer": 60.0, "engine-pad-to-max": 22.0},
                "ratios": {"engine / Trainer examples/s": 1.1, "engine / Trainer real tokens/s": 1.1,
                           "engine: dynamic / pad-to-max examples/s": 3.0}}
    monkeypatch.setattr(bench_encoder, "compare", fake_compare)
    monkeypatch.setattr(bench, "matmul_flops", lambda: 1e10)
    assert bench.main(["encoder", "--steps", "3", "--warmup", "1", "--rounds", "1"]) == 0
    assert seen == {"model": "all-MiniLM-L6-v2", "warmup": 1, "steps": 3, "rounds": 1}
    out = capsys.readouterr().out
    assert "engine / Trainer examples/s: 1.10x" in out and "Trainer 60.0" in out
