"""Inference options of a Bridge: ``progress`` bars and ``clip`` to the data's observed range."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import sbflow
from sbflow import Bridge
from sbflow.cli import main
from sbflow.data import load_samples, save_samples
from sbflow.gaussian import GaussianBridge

LEGACY = Path(__file__).parents[1] / "data" / "legacy"
TINY = dict(steps=5, hidden=8, depth=1, batch_size=16, progress=False, prefetch=0)


@pytest.fixture(scope="module")
def gaussian() -> Bridge:
    return Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 0.5))


@pytest.fixture(scope="module")
def flow() -> Bridge:
    """A standard-normal → data flow (``sample`` and ``log_prob`` need one)."""
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) + 3.0
    return sbflow.fit("normal", data, method="fm", **TINY)


@pytest.fixture(scope="module")
def digits() -> tuple[Bridge, torch.Tensor, torch.Tensor]:
    """Digit-like 8-pixel images, intensities 0…16: 'zeros' (dark) → 'ones' (bright)."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 7, (200, 8), generator=g).float()
    x1 = torch.randint(6, 17, (200, 8), generator=g).float()
    x1[:, 0] = 16.0  # one constant feature: its range is a single value
    return sbflow.fit(x0, x1, method="ot-cfm", **TINY), x0, x1


def _calls(gaussian: Bridge, flow: Bridge) -> dict[str, Callable[[Any], Any]]:
    x = torch.zeros(8, 1)
    gen = torch.Generator().manual_seed(0)
    return {
        "transport": lambda p: gaussian.transport(x, sde=False, progress=p),
        "trajectory": lambda p: gaussian.trajectory(x, [0.0, 0.5, 1.0], sde=False, progress=p),
        "sample": lambda p: flow.sample(8, generator=gen, sde=False, progress=p),
        "sample_conditional": lambda p: gaussian.sample_conditional(
            x, 2, steps=5, generator=gen, progress=p
        ),
        "log_prob": lambda p: flow.log_prob(torch.zeros(4, 2), progress=p),
        "evaluate": lambda p: gaussian.evaluate(x, x + 2, sde=True, sde_steps=5, progress=p),
    }


@pytest.mark.parametrize(
    "name", ["transport", "trajectory", "sample", "sample_conditional", "log_prob", "evaluate"]
)
def test_progress_false_is_silent_and_true_shows_a_bar(
    name: str, gaussian: Bridge, flow: Bridge, capsys: pytest.CaptureFixture[str]
) -> None:
    call = _calls(gaussian, flow)[name]
    capsys.readouterr()
    call(False)
    assert capsys.readouterr().err == ""
    call(True)
    err = capsys.readouterr().err
    assert "100%" in err, err


def test_progress_auto_is_silent_when_stderr_is_not_a_terminal(
    gaussian: Bridge, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    gaussian.transport(torch.zeros(8, 1), sde=False)
    assert capsys.readouterr().err == ""


def test_progress_rejects_non_booleans(gaussian: Bridge) -> None:
    with pytest.raises(TypeError, match="progress"):
        gaussian.transport(torch.zeros(2, 1), progress="yes")


def test_fit_records_each_sets_observed_range(digits: Any) -> None:
    bridge, x0, x1 = digits
    low, high = bridge.data_range
    assert low.shape == high.shape == (2, 8)
    torch.testing.assert_close(low, torch.stack([x0.amin(0), x1.amin(0)]))
    torch.testing.assert_close(high, torch.stack([x0.amax(0), x1.amax(0)]))


def test_fit_on_named_sets_records_the_range_of_the_stats_draws() -> None:
    bridge = sbflow.fit("8gaussians", "moons", **TINY)
    low, high = bridge.data_range
    assert low.shape == (2, 2) and bool((low < high).all())
    # 8gaussians: centres at radius 4 (scaled), moons within a few units: finite and sane.
    assert float(high.abs().max()) < 10


def test_clip_keeps_digits_in_range_and_is_the_clamped_transport(digits: Any) -> None:
    bridge, x0, x1 = digits
    raw = bridge.transport(x0, sde=False)
    clipped = bridge.transport(x0, sde=False, clip=True)
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 16.0
    torch.testing.assert_close(clipped, raw.clamp(x1.amin(0), x1.amax(0)))
    assert bool((clipped[:, 0] == 16.0).all())  # the constant feature lands on its value


def test_reverse_clips_to_the_source_side_and_numpy_stays_numpy(digits: Any) -> None:
    bridge, x0, x1 = digits
    back = bridge.transport(x1.numpy(), reverse=True, sde=False, clip=True)
    assert isinstance(back, np.ndarray)
    assert (back >= x0.amin(0).numpy()).all() and (back <= x0.amax(0).numpy()).all()


def test_trajectory_clips_between_snapshots_to_the_union_of_their_ranges(digits: Any) -> None:
    bridge, x0, x1 = digits
    raw = bridge.trajectory(x0, [0.0, 0.5, 1.0], sde=False)
    traj = bridge.trajectory(x0, [0.0, 0.5, 1.0], sde=False, clip=True)
    lows = [x0.amin(0), torch.minimum(x0.amin(0), x1.amin(0)), x1.amin(0)]
    highs = [x0.amax(0), torch.maximum(x0.amax(0), x1.amax(0)), x1.amax(0)]
    for k in range(3):
        torch.testing.assert_close(traj[k], raw[k].clamp(lows[k], highs[k]))


def test_sample_clips_to_the_target_range(flow: Bridge) -> None:
    y = flow.sample(50, generator=torch.Generator().manual_seed(1), sde=False, clip=True)
    low, high = flow.data_range
    assert bool((y >= low[-1]).all() and (y <= high[-1]).all())


def test_save_load_keeps_the_range(digits: Any, tmp_path: Path) -> None:
    bridge = digits[0]
    again = sbflow.load(bridge.save(tmp_path / "digits.pt"))
    for a, b in zip(again.data_range, bridge.data_range):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["ot_cfm_2sets", "sb_cfm_2sets"])
def test_legacy_file_has_no_range_and_clip_says_so(name: str) -> None:
    bridge = sbflow.load(LEGACY / f"{name}.pt")
    assert bridge.data_range is None
    x = torch.zeros(3, *bridge.feature_shape)
    bridge.transport(x, sde=False)  # without clip it still works
    with pytest.raises(ValueError, match="no recorded range"):
        bridge.transport(x, sde=False, clip=True)


def test_a_bridge_without_a_range_refuses_clip_everywhere(gaussian: Bridge) -> None:
    x = torch.zeros(2, 1)
    for call in (
        lambda: gaussian.trajectory(x, clip=True),
        lambda: gaussian.sample_conditional(x, 2, clip=True),
    ):
        with pytest.raises(ValueError, match="no recorded range"):
            call()
    with pytest.raises(TypeError, match="clip"):
        gaussian.transport(x, clip="yes")


def test_data_range_is_checked() -> None:
    gb = GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 0.5)
    field = Bridge.from_gaussian(gb).model
    with pytest.raises(ValueError, match="low > high"):
        Bridge(field, method="g", feature_shape=(1,), data_range=([1.0], [0.0]))
    with pytest.raises(ValueError, match="shape"):
        Bridge(field, method="g", feature_shape=(1,), data_range=([0.0, 0.0], [1.0, 1.0]))
    one = Bridge(field, method="g", feature_shape=(1,), data_range=([0.0], [1.5]))
    assert one.data_range[1].tolist() == [[1.5], [1.5]]  # one range for both snapshots
    assert float(one.transport(torch.zeros(4, 1), sde=False, clip=True).max()) == 1.5


def test_cli_transport_clip(digits: Any, tmp_path: Path) -> None:
    bridge, x0, _ = digits
    path = bridge.save(tmp_path / "b.pt")
    save_samples(tmp_path / "x0.npy", x0)
    out = tmp_path / "y.npy"
    argv = ["transport", str(path), str(tmp_path / "x0.npy"), str(out), "--ode"]
    assert main([*argv, "--clip", "--no-progress"]) == 0
    y = load_samples(out)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 16.0
