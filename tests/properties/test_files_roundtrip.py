"""Save → load round trips: sample files and bridge files give back exactly what was saved."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import sbflow
from sbflow.data import load_samples, save_samples
from sbflow.training.checkpoint import state_digest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402


@st.composite
def sample_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(
        st.tuples(st.integers(1, 12), st.integers(1, 4))
        | st.tuples(st.integers(1, 6), st.integers(1, 3), st.integers(1, 3))
    )
    width = 32 if dtype == np.float32 else 64
    limit = 2.0**99 if dtype == np.float32 else 2.0**330  # exactly representable
    elements = st.floats(-limit, limit, width=width, allow_nan=False, allow_infinity=False)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@given(x=sample_arrays(), suffix=st.sampled_from([".npy", ".npz", ".csv", ".pt"]))
def test_sample_files_round_trip_exactly(x: np.ndarray, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = save_samples(Path(d) / f"s{suffix}", x)
        y = load_samples(path)
        assert sorted(p.name for p in Path(d).iterdir()) == [path.name]
    expected = torch.from_numpy(x)
    if suffix == ".csv":  # a table: one row per sample, read back as float64
        expected = expected.reshape(x.shape[0], -1)
        y = y.to(expected.dtype)
    assert y.dtype == expected.dtype
    assert torch.equal(y, expected)


@given(
    method=st.sampled_from(["ot-cfm", "i-cfm", "sb-cfm"]),
    dim=st.integers(1, 3),
    normalise=st.sampled_from([True, "features", False]),
    seed=st.integers(0, 2**16),
)
def test_bridge_files_round_trip_exactly(
    method: str, dim: int, normalise: object, seed: int
) -> None:
    if method == "sb-cfm" and normalise == "features":
        normalise = True  # per-feature scales would make the bridge noise anisotropic
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(24, dim, generator=g) * 2.0 + 1.0
    x1 = torch.randn(24, dim, generator=g) * 0.5 - 3.0
    bridge = sbflow.fit(
        x0,
        x1,
        method=method,
        steps=3,
        hidden=8,
        depth=1,
        batch_size=8,
        normalise=normalise,
        seed=seed,
        progress=False,
        prefetch=0,
    )
    with tempfile.TemporaryDirectory() as d:
        path = bridge.save(Path(d) / "b.pt")
        loaded = sbflow.load(path)
        again = loaded.save(Path(d) / "b2.pt")
        reloaded = sbflow.load(again)
    before, after = bridge.state_dict(), reloaded.state_dict()
    assert before.keys() == after.keys()
    assert state_digest(before) == state_digest(after)
    x = torch.randn(5, dim, generator=g)
    out = [
        b.transport(x, steps=4, generator=torch.Generator().manual_seed(1))
        for b in (bridge, loaded)
    ]
    assert torch.equal(out[0], out[1])
