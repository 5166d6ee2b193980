import pytest

from lib.core import stages


@pytest.fixture
def clock(monkeypatch):
    """A hand-driven clock: perf_counter returns whatever `now[0]` says."""
    now = [100.0]
    monkeypatch.setattr(stages.time, "perf_counter", lambda: now[0])
    stages.reset()
    yield now
    stages.reset()


def test_nested_stages_count_only_toward_themselves(clock):
    # train 0..10 s with a 3 s evaluation (predict) inside and a 1 s model load inside that:
    # train 10 - 3 = 7, predict 3 - 1 = 2, load 1
    with stages.stage("train"):
        clock[0] += 2
        with stages.stage("predict"):
            clock[0] += 1
            with stages.stage("load"):
                clock[0] += 1
            clock[0] += 1
        clock[0] += 5
    assert stages.seconds() == {"load": 1.0, "train": 7.0, "predict": 2.0}
    assert stages.seconds(wall=12.5)["other"] == 2.5  # 12.5 - (1 + 7 + 2)


def test_repeated_calls_add_up_and_a_raising_block_still_counts(clock):
    @stages.timed("predict")
    def predict(seconds, fail=False):
        clock[0] += seconds
        if fail:
            raise RuntimeError("boom")
        return seconds

    assert predict(2) == 2
    with pytest.raises(RuntimeError):
        predict(3, fail=True)
    assert stages.seconds()["predict"] == 5.0
    assert stages.seconds(wall=1.0)["other"] == 0.0  # never negative


def test_an_unknown_stage_is_refused(clock):
    with pytest.raises(ValueError, match="unknown stage 'eval'"):
        with stages.stage("eval"):
            pass
