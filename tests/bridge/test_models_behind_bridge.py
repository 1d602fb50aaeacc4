"""Any registered network stands behind Bridge: a U-Net on 8×8 digits, two drift networks,
and configs that would allocate too much are refused before anything is allocated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sbflow
from sbflow.bridge import Bridge
from sbflow.models import build_model


def _digits(label: int, n: int) -> torch.Tensor:
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_digits()
    x = torch.as_tensor(data.images[data.target == label][:n], dtype=torch.float32)
    return x.unsqueeze(1)  # (n, 1, 8, 8), pixel values 0 … 16


def test_small_unet_bridges_two_digit_classes(tmp_path: Path) -> None:
    x0, x1 = _digits(0, 120), _digits(1, 120)
    bridge = sbflow.fit(x0, x1, method="ot-cfm", model="small-unet",
                        model_config={"in_channels": 1, "base_channels": 4},
                        steps=30, warmup_steps=3, batch_size=16, lr=1e-2, progress=False,
                        prefetch=0)  # fmt: skip
    assert bridge.feature_shape == (1, 8, 8)
    y = bridge.transport(x0[:32], steps=8)
    assert y.shape == (32, 1, 8, 8) and torch.isfinite(y).all()
    # Training moved the zeros towards the ones (their mean image).
    gap = (x0.mean(0) - x1.mean(0)).norm()
    assert (y.mean(0) - x1.mean(0)).norm() < 0.5 * gap
    metrics = bridge.evaluate(x0[:20], x1[:20], n_times=5)
    assert metrics["w2"] < metrics["w2_ot"]
    loaded = sbflow.load(bridge.save(tmp_path / "digits.pt"))
    assert torch.load(tmp_path / "digits.pt")["model"]["name"] == "small-unet"
    torch.testing.assert_close(loaded.transport(x0[:32], steps=8), y)


def test_two_drift_networks_behind_a_bridge(tmp_path: Path) -> None:
    """f = v + (σ²/2)s forward and b = −v + (σ²/2)s backward recover (v, s) exactly."""
    mlp = {"name": "time-mlp", "config": {"dim": 2, "hidden": 8, "depth": 1}}
    torch.manual_seed(0)
    pair = build_model("drift-pair", forward=mlp, backward=mlp, sigma=0.5)
    bridge = Bridge(pair, method="dsbm", feature_shape=(2,), sigma=0.5, simulation="sde")
    x = torch.randn(8, 2)
    t = torch.full((8,), 0.3)
    v, s = pair(x, t)
    f, b = pair.forward_drift(x, t), pair.backward_drift(x, t)
    torch.testing.assert_close(v + 0.125 * s, f)
    torch.testing.assert_close(-v + 0.125 * s, b)
    loaded = sbflow.load(bridge.save(tmp_path / "pair.pt"))
    gen = [torch.Generator().manual_seed(1) for _ in range(2)]
    torch.testing.assert_close(
        loaded.transport(x, steps=10, generator=gen[0]),
        bridge.transport(x, steps=10, generator=gen[1]),
    )


def test_oversized_model_config_in_a_file_is_refused_without_allocating(tmp_path: Path) -> None:
    bridge = sbflow.fit("8gaussians", "moons", steps=1, hidden=8, depth=1, progress=False)
    state = bridge.state_dict()
    state["model"]["config"].update(hidden=30000, depth=20)
    torch.save(state, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match="parameters, over the limit"):
        sbflow.load(tmp_path / "edited.pt")
    state["model"]["name"] = "os.system"
    torch.save(state, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match=r"unknown model .os\.system."):
        sbflow.load(tmp_path / "unknown.pt")


def test_unregistered_module_is_refused_before_training() -> None:
    with pytest.raises(ValueError, match="register_model"):
        sbflow.fit("8gaussians", "moons", model=torch.nn.Linear(2, 2), steps=1, progress=False)
