"""fit's options: one TrainConfig for the optimisation, recorded once on the bridge."""

from __future__ import annotations

import pytest
import torch

import sbflow
from sbflow.training import TrainConfig

SMALL = dict(hidden=8, depth=1)


def test_train_config_replaces_the_keywords() -> None:
    config = TrainConfig(
        steps=7, lr=2e-3, seed=3, lr_schedule="cosine", progress=False, prefetch=0, log_every=1
    )
    a = sbflow.fit("moons", "scurve", train=config, **SMALL)
    b = sbflow.fit("moons", "scurve", steps=7, lr=2e-3, seed=3, progress=False, prefetch=0,
                   log_every=1, **SMALL)  # fmt: skip
    assert a.history == b.history and len(a.history) == 7
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x, y)
    assert a.options == b.options and a.options["lr"] == 2e-3 and a.options["seed"] == 3


def test_an_option_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="lr given both as keywords and in train"):
        sbflow.fit("moons", "scurve", lr=0.1, train=TrainConfig(steps=1), **SMALL)
    with pytest.raises(TypeError, match="TrainConfig"):
        sbflow.fit("moons", "scurve", train={"steps": 1}, **SMALL)


def test_a_method_instance_and_sigma_checks() -> None:
    from sbflow.methods import get_method

    bridge = sbflow.fit("moons", "scurve", method=get_method("sb-cfm", sigma=0.2), steps=2,
                        progress=False, **SMALL)  # fmt: skip
    assert bridge.sigma == 0.2 and bridge.method == "sb-cfm"
    with pytest.raises(ValueError, match="set sigma and coupling on the instance"):
        sbflow.fit("moons", "scurve", method=get_method("sb-cfm"), sigma=0.3, **SMALL)
    with pytest.raises(ValueError, match="needs sigma > 0"):
        sbflow.fit("moons", "scurve", method="sb-cfm", sigma=0.0, **SMALL)
