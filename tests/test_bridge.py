"""sbflow.fit and Bridge: round trips, resumption, inputs, multi-snapshot fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import sbflow.bridge as sb
from sbflow.data import sample_dataset, save_samples
from sbflow.training import StopTraining

TINY = dict(steps=30, batch_size=64, hidden=16, depth=2, progress=False, log_every=10)


def data(name: str, n: int, seed: int) -> torch.Tensor:
    return sample_dataset(name, n, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def ot_bridge() -> sb.Bridge:
    return sb.fit("8gaussians", "moons", method="ot-cfm", **TINY)


@pytest.fixture(scope="module")
def sb_bridge() -> sb.Bridge:
    return sb.fit("8gaussians", "moons", method="sb-cfm", **TINY)


def test_save_load_transport_identical(tmp_path: Path, ot_bridge: sb.Bridge) -> None:
    x0 = data("8gaussians", 50, 1)
    path = ot_bridge.save(tmp_path / "b.pt")
    loaded = sb.load(path)
    assert torch.equal(loaded.transport(x0), ot_bridge.transport(x0))
    assert torch.equal(loaded.normalizer.scale, ot_bridge.normalizer.scale)
    assert loaded.options == ot_bridge.options
    assert loaded.history == ot_bridge.history
    assert not list(tmp_path.glob(".*.tmp"))


def test_sde_save_load_identical_with_seeded_generator(
    tmp_path: Path, sb_bridge: sb.Bridge
) -> None:
    x0 = data("8gaussians", 40, 2)
    loaded = sb.load(sb_bridge.save(tmp_path / "sb.pt"))
    a = sb_bridge.transport(x0, steps=20, generator=torch.Generator().manual_seed(5))
    b = loaded.transport(x0, steps=20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert sb_bridge.needs_score and sb_bridge.sigma > 0
    ode = sb_bridge.transport(x0, sde=False)
    assert ode.shape == x0.shape and not torch.equal(ode, a)


def test_transport_shapes_dtypes_reverse_and_trajectory(ot_bridge: sb.Bridge) -> None:
    x0 = data("8gaussians", 20, 3).double()
    x1 = ot_bridge.transport(x0)
    assert x1.shape == (20, 2) and x1.dtype == torch.float64
    back = ot_bridge.transport(x1, reverse=True)
    assert back.shape == (20, 2)
    # The ODE is invertible: backward after forward returns close to the start.
    assert torch.allclose(back, x0, atol=0.05 * float(x0.std()))
    traj = ot_bridge.trajectory(x0, [0.0, 0.5, 1.0])
    assert traj.shape == (3, 20, 2)
    assert torch.allclose(traj[0], x0)
    assert torch.allclose(traj[-1], x1, atol=5e-3)  # dense output vs. end point
    euler = ot_bridge.transport(x0, steps=10)
    assert euler.shape == (20, 2)
    with pytest.raises(ValueError, match="ODE only"):
        ot_bridge.transport(x0, sde=True)
    with pytest.raises(ValueError, match="shape"):
        ot_bridge.transport(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        ot_bridge.transport(torch.tensor([[0.0, float("nan")]]))


def test_normalisation_is_undone(ot_bridge: sb.Bridge) -> None:
    norm = ot_bridge.normalizer
    assert float(norm.scale[0]) > 2.0  # 8gaussians/moons spread ~3 in data units
    x = data("moons", 10, 4)
    assert torch.allclose(norm.decode(norm.encode(x)), x, atol=1e-5)


def test_evaluate_keys_and_identity_values(ot_bridge: sb.Bridge, sb_bridge: sb.Bridge) -> None:
    x0, x1 = data("8gaussians", 150, 5), data("moons", 150, 6)
    m = ot_bridge.evaluate(x0, x1, n_times=11)
    for key in (
        "w2",
        "w1",
        "energy",
        "mmd",
        "nfe",
        "path_energy",
        "w2_ot",
        "normalized_path_energy",
    ):
        assert key in m and np.isfinite(m[key])
    assert m["nfe"] >= 6 and m["w2"] >= 0
    assert m["normalized_path_energy"] == pytest.approx(
        abs(m["path_energy"] - m["w2_ot"] ** 2) / m["w2_ot"] ** 2
    )
    assert "w2_sde" in sb_bridge.evaluate(x0, x1, n_times=11, sde_steps=10)


def test_log_prob_only_with_gaussian_source(ot_bridge: sb.Bridge) -> None:
    with pytest.raises(ValueError, match="known density"):
        ot_bridge.log_prob(torch.zeros(3, 2))
    fm = sb.fit(None, "moons", method="fm", **TINY)
    lp = fm.log_prob(data("moons", 8, 7))
    assert lp.shape == (8,) and torch.isfinite(lp).all()
    assert fm.sample(5, generator=torch.Generator().manual_seed(0)).shape == (5, 2)
    assert sb.fit(" Normal", "moons", method="fm", **TINY).base == "normal"  # names ignore case
    # From the built-in normal, with normalisation: densities in data units integrate to ~1
    # (checked on a grid; the flow is barely trained, but the change of variables is exact).
    nb = sb.fit("normal", "moons", method="ot-cfm", **TINY)
    side = torch.linspace(-12, 12, 61)
    grid = torch.cartesian_prod(side, side)
    mass = float(nb.log_prob(grid).exp().sum()) * float(side[1] - side[0]) ** 2
    assert mass == pytest.approx(1.0, abs=0.1)


def test_fit_from_arrays_and_files(tmp_path: Path) -> None:
    a, b = data("scurve", 300, 8), data("checkerboard", 300, 9)
    save_samples(tmp_path / "a.npy", a)
    save_samples(tmp_path / "b.csv", b)
    from_files = sb.fit(tmp_path / "a.npy", str(tmp_path / "b.csv"), **TINY)
    from_arrays = sb.fit(a.numpy(), b.double(), **TINY)
    x = a[:10]
    assert torch.allclose(from_files.transport(x), from_arrays.transport(x), atol=1e-5)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("moons", "moons"), {"method": "x-cfm"}, "unknown method"),
        (("moons", "mooons"), {}, "neither an existing file nor a built-in"),
        ((torch.zeros(10, 3), torch.zeros(10, 2)), {}, "one space"),
        ((torch.zeros(10, 3), "moons"), {}, "2-D samples"),
        ((torch.tensor([[0.0, float("nan")]]), "moons"), {}, "NaN"),
        (("moons",), {}, "needs a target"),
        (("moons", "scurve"), {"method": "fm"}, "standard normal"),
        ((["moons", "scurve"],), {"times": [1.0, 0.0]}, "strictly increasing"),
        ((["moons", "scurve"],), {"times": [0.0]}, "2 sample sets but 1 times"),
        (("moons", "scurve"), {"batch_size": 0}, "batch_size"),
        (("moons", "scurve"), {"normalise": "yes"}, "normalise"),
        (("moons", "scurve"), {"lr": -1.0}, "lr"),
        (
            ("moons", "scurve"),
            {"device": "cuda:9"} if not torch.cuda.is_available() else {"device": "nonsense"},
            "device",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sb.fit(*args, **{**TINY, **kwargs})


def test_missing_and_corrupt_bridge_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        sb.load(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not an sbflow bridge file"):
        sb.load(bad)
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an sbflow bridge"):
        sb.load(tmp_path / "other.pt")


def test_interrupted_fit_resumes_exactly(tmp_path: Path) -> None:
    opts = dict(TINY, steps=40, checkpoint_every=8)
    reference = sb.fit("8gaussians", "moons", **opts)

    def interrupt(trainer: object, step: int, loss: torch.Tensor) -> None:
        if step == 19:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sb.fit("8gaussians", "moons", run_dir=tmp_path, callbacks=[interrupt], **opts)
    assert not (tmp_path / "bridge.pt").exists()
    resumed = sb.fit("8gaussians", "moons", run_dir=tmp_path, **opts)
    for a, b in zip(reference.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert reference.history == resumed.history
    assert (tmp_path / "bridge.pt").is_file() and (tmp_path / "log.csv").is_file()
    # Same run directory, different data: refused instead of silently mixed.
    with pytest.raises(ValueError, match="different run"):
        sb.fit("8gaussians", "scurve", run_dir=tmp_path, **opts)


def test_stop_training_callback_gives_a_bridge() -> None:
    def stop(trainer: object, step: int, loss: torch.Tensor) -> None:
        if step == 5:
            raise StopTraining

    bridge = sb.fit("moons", "scurve", callbacks=[stop], **TINY)
    assert bridge.transport(torch.zeros(2, 2)).shape == (2, 2)


def test_multi_snapshot_fit_and_leave_one_out() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(400, 2, generator=g)
    snaps = [base + torch.tensor([2.0 * k, 0.0]) for k in range(4)]
    times = [0.0, 1.0, 3.0, 4.0]
    bridge = sb.fit(snaps, times=times, **TINY)
    assert bridge.times == times
    mid = bridge.transport(snaps[1], t_start=1.0, t_end=3.0)
    assert mid.shape == (400, 2)
    assert bridge.trajectory(snaps[0], [0.0, 1.0, 4.0]).shape == (3, 400, 2)
    with pytest.raises(ValueError, match="outside the fitted range"):
        bridge.transport(snaps[0], t_end=5.0)
    res = sb.leave_one_out(snaps, times, index=2, **TINY)
    assert set(res) == {"index", "time", "w1", "w2", "energy", "mmd"}
    assert res["time"] == 3.0 and res["w2"] >= 0
    with pytest.raises(ValueError, match="interior"):
        sb.leave_one_out(snaps, times, index=0, **TINY)
    sbb = sb.fit(snaps[:3], times=times[:3], method="sb-cfm", **TINY)
    assert sbb.transport(snaps[0], t_end=1.0, steps=10).shape == (400, 2)


def test_plot_writes_png(tmp_path: Path, ot_bridge: sb.Bridge) -> None:
    import matplotlib.figure

    fig = ot_bridge.plot(data("8gaussians", 100, 1), data("moons", 100, 2), path=tmp_path / "p.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_default_ot_cfm_beats_i_cfm() -> None:
    """The README claim: OT-CFM is as accurate, straighter and cheaper to integrate."""
    g = torch.Generator().manual_seed(123)  # held out: fit draws from step-seeded generators
    x0 = sample_dataset("8gaussians", 2000, generator=g)
    x1 = sample_dataset("moons", 2000, generator=g)
    ot = sb.fit("8gaussians", "moons", method="ot-cfm", progress=False).evaluate(x0, x1)
    ind = sb.fit("8gaussians", "moons", method="i-cfm", progress=False).evaluate(x0, x1)
    assert ot["w2"] < ind["w2"]
    assert ot["nfe"] < ind["nfe"]
    assert ot["normalized_path_energy"] < 0.1
