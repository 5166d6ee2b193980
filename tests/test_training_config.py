"""lib/training/config.py: a TRAINING dict becomes a TrainConfig; train_model trains under it."""
import pytest
import torch

from lib.core.errors import LabError
from lib.training import train
from lib.training.config import train_config, train_model


def test_train_config_takes_the_dict_and_overrides_win():
    cfg = train_config({"epochs": 4, "lr": 0.01, "patience": 1}, lr=0.5, monitor="loss", mode="min")
    assert (cfg.epochs, cfg.lr, cfg.patience, cfg.monitor, cfg.mode) == (4, 0.5, 1, "loss", "min")
    assert cfg.weight_decay == train.TrainConfig().weight_decay  # keys left out keep TrainConfig's defaults


def test_train_config_names_an_unknown_key():
    with pytest.raises(LabError, match=r"TRAINING: unknown key\(s\) epoch, lrate; expected some of epochs, lr"):
        train_config({"epoch": 3}, lrate=0.1)


def test_train_model_trains_under_the_dict():
    """A one-parameter regression to y = 2: max_steps from the dict caps the run, the override picks the monitor."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    x, y = torch.ones(4, 1), torch.full((4, 1), 2.0)
    batches = [(x, y)] * 10

    def loss_fn(m, b):
        return torch.nn.functional.mse_loss(m(b[0].to(m.weight.device)), b[1].to(m.weight.device))

    hist = train_model(model, batches, loss_fn, lambda m: {"neg": -float(loss_fn(m, (x, y)))},
                       {"epochs": 1, "lr": 0.1, "max_steps": 3, "scheduler": "none", "clip_norm": 0, "progress": False},
                       log=lambda *_: None, monitor="neg")
    assert hist.optimizer_steps == 3
    assert hist.best["neg"] > -4.0  # moved from the start (weight near 0: loss ~4) toward y = 2


def test_each_training_of_a_run_checkpoints_into_its_own_numbered_folder(tmp_path, monkeypatch):
    """A notebook that trains several models (folds, methods, variants) gives each its own checkpoint folder,
    numbered in the order they start, so a re-run of the notebook finds each training's checkpoints again."""
    import itertools

    from lib.training import config
    monkeypatch.setattr(config, "_trainings", itertools.count(1))  # a fresh process: the first training is 01
    seen = []
    monkeypatch.setattr(config.train, "fit", lambda model, b, l, e, cfg, log: seen.append(cfg))
    run = {"checkpoint_dir": str(tmp_path / "ckpt"), "save_every": 5, "resume": True, "track": "tensorboard",
           "track_dir": str(tmp_path / "tracking")}
    for _ in range(2):
        train_model(None, [], None, None, {"epochs": 1, **run})
    assert [c.checkpoint_dir for c in seen] == [str(tmp_path / "ckpt" / "training-01"),
                                                str(tmp_path / "ckpt" / "training-02")]
    assert [c.track_dir for c in seen] == [str(tmp_path / "tracking" / "training-01"),
                                           str(tmp_path / "tracking" / "training-02")]
    assert config.run_fields({"epochs": 3, **run}) == run  # what 04's decoder takes over from TRAINING
    train_model(None, [], None, None, {"epochs": 1})  # no checkpoint_dir: none made up
    assert seen[-1].checkpoint_dir == "" and seen[-1].track_dir == ""
