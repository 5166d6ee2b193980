"""What the training engine reports (lib.training.trackers): tensorboard curves through accelerate's trackers, the progress
bar (off under TQDM_DISABLE), one evaluation line in words."""
import pytest
import torch

from lib.training import trackers, train


def _fit(cfg, log=lambda *_: None):
    """A linear model on 2 batches an epoch; evaluate() scores 0.1, 0.2, ... at its successive calls."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    batches = [(torch.randn(8, 4), torch.randn(8, 1))] * 2
    calls = []

    def evaluate(m):
        calls.append(1)
        return {"loss": 0.0, "macro_f1": 0.1 * len(calls)}
    return train.fit(model, batches, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), evaluate, cfg,
                     log=log)


def test_tracking_writes_tensorboard_events(tmp_path):
    _fit(train.TrainConfig(epochs=2, lr=0.01, track="tensorboard", track_dir=str(tmp_path), progress=False))
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(events[0].parent))
    ea.Reload()
    assert {"train_loss", "macro_f1"} <= set(ea.Tags()["scalars"])
    assert [s.step for s in ea.Scalars("macro_f1")] == [2, 4]
    assert [s.step for s in ea.Scalars("train_loss")] == [1, 2, 3, 4]


def test_no_tracking_logs_nothing_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fit(train.TrainConfig(epochs=1, progress=False))
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_shows_steps_unless_tqdm_disable(monkeypatch, capsys):
    """Interactive runs get a bar counting optimiser steps; run_all's kernels set TQDM_DISABLE=1 and get none."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    _fit(train.TrainConfig(epochs=1))
    assert "2/2" in capsys.readouterr().err                # 2 micro-batches, no accumulation: 2 steps
    monkeypatch.setenv("TQDM_DISABLE", "1")
    _fit(train.TrainConfig(epochs=1))
    assert capsys.readouterr().err == ""


def test_progress_bar_counts_from_the_resumed_step(monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    bar = trackers.ProgressBar(True, total=10, done=6)
    bar.update(0.5)
    bar.close()
    assert "7/10" in capsys.readouterr().err


def test_log_lines_say_steps_and_time_left_in_words():
    lines = []
    _fit(train.TrainConfig(epochs=2), log=lines.append)
    assert [l.split(":")[0] for l in lines] == ["epoch 1.00 step 2/4", "epoch 2.00 step 4/4"]
    assert lines[-1].endswith("~0s left)")


def test_eval_line_marks_a_new_best_and_bounds_the_time_left():
    rec = {"step": 5, "epoch": 1.25, "train_loss": 0.5, "macro_f1": 0.25, "note": "text"}
    line = trackers.eval_line(rec, True, total=20, seconds=10.0, steps_timed=5)
    assert line == "epoch 1.25 step 5/20: train_loss 0.5000  macro_f1 0.2500  *  (10s, at most ~30s left)"
    assert "*" not in trackers.eval_line(rec, False, total=20, seconds=10.0, steps_timed=5)


def test_tracking_with_mlflow_writes_a_file_store_read_back_by_its_client(tmp_path, monkeypatch):
    """TRACK="mlflow" (the optional extra, requirements-tracking.txt; tests/run.sh installs it): the curves and the
    configuration land in a file store in the run's tracking folder, readable with MLflow's own client."""
    mlflow = pytest.importorskip("mlflow", reason="MLflow is the optional tracking extra: "
                                                  "pip install -r requirements-tracking.txt")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # the lab sets it; the test leaves none behind
    _fit(train.TrainConfig(epochs=2, lr=0.01, track="mlflow", track_dir=str(tmp_path / "tracking"), progress=False))
    client = mlflow.tracking.MlflowClient(tracking_uri=(tmp_path / "tracking").resolve().as_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2, 3, 4]  # 2 batches x 2 epochs, one step each
    assert runs[0].data.params["lr"] == "0.01"


def test_tracking_with_mlflow_missing_says_how_to_install_it(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mlflow(name, *a, **kw):
        if name == "mlflow":
            raise ImportError("No module named 'mlflow'")
        return real_import(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    from lib.core.errors import LabError
    with pytest.raises(LabError, match="requirements-tracking.txt"):
        _fit(train.TrainConfig(epochs=1, track="mlflow", track_dir=str(tmp_path), progress=False))
