"""Best state and early stopping (lib.training.stopping): which evaluation is best in either direction, when patience runs
out, the best weights restored and round-tripped through a checkpoint's state; a missing monitored metric or an
unknown direction is a clear error."""
import pytest
import torch

from lib.core.errors import LabError
from lib.training import stopping, train


def test_best_state_in_both_directions_and_patience():
    up = stopping.BestState("f1", "max", patience=2)
    model = torch.nn.Linear(2, 1)
    assert [up.update({"f1": v}, model) for v in (0.3, 0.5, 0.5, 0.4)] == [True, True, False, False]
    assert up.value == 0.5 and up.exhausted                 # two evaluations in a row without a new best
    down = stopping.BestState("loss", "min", patience=0)
    assert [down.update({"loss": v}, model) for v in (3.0, 2.0, 2.5, 2.5, 2.5)] == [True, True, False, False, False]
    assert down.value == 2.0 and not down.exhausted         # patience 0: never stops


def test_restore_puts_back_the_trainable_weights_of_the_best_evaluation_only():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    model[0].bias.requires_grad_(False)
    best = stopping.BestState("f1")
    best.update({"f1": 1.0}, model)
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.add_(1.0)
    assert not best.update({"f1": 0.5}, model)
    best.restore(model)
    now = model.state_dict()
    assert torch.equal(now["0.weight"], kept["0.weight"]) and torch.equal(now["1.running_mean"], kept["1.running_mean"])
    assert torch.equal(now["0.bias"], kept["0.bias"] + 1.0)  # frozen: not copied, so not restored


def test_state_round_trips_through_a_checkpoint():
    model = torch.nn.Linear(2, 1)
    a = stopping.BestState("f1", patience=3)
    a.update({"f1": 0.7}, model)
    a.update({"f1": 0.6}, model)
    b = stopping.BestState("f1", patience=3)
    b.load_state_dict(a.state_dict())
    assert (b.value, b.bad) == (0.7, 1) and not b.update({"f1": 0.65}, model) and b.bad == 2


def test_an_unknown_direction_is_a_clear_error():
    with pytest.raises(LabError, match="TrainConfig.mode 'maximum'"):
        stopping.BestState("f1", "maximum")


def test_an_evaluate_without_the_monitored_metric_is_a_clear_error():
    model = torch.nn.Linear(2, 1)
    batches = [(torch.ones(1, 2), torch.ones(1, 1))]
    with pytest.raises(LabError, match="'macro_f1' \\(TrainConfig.monitor\\)"):
        train.fit(model, batches, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]),
                  lambda m: {"loss": 0.0, "f1": 0.5}, train.TrainConfig(epochs=1, progress=False), log=lambda *_: None)
