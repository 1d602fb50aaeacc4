"""Out-of-sample maps of couplings: POT's barycentric convention, the entropic map, types."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbflow.couplings import couple
from sbflow.couplings.maps import inverse_transform, transform


def _sets(n: int = 40, m: int = 50, d: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = 2 * torch.randn(m, d, generator=g, dtype=torch.float64) + 3
    return x0, x1, torch.randn(30, d, generator=g, dtype=torch.float64)


def test_barycentric_map_matches_pot_emd_transport() -> None:
    ot = pytest.importorskip("ot")
    x0, x1, new = _sets()
    c = couple(x0, x1, method="exact")
    ours = c.transform(new).numpy()
    da = ot.da.EMDTransport().fit(Xs=x0.numpy(), Xt=x1.numpy())
    assert np.abs(ours - da.transform(Xs=new.numpy())).max() < 1e-9
    back = c.inverse_transform(new + 3).numpy()
    assert np.abs(back - da.inverse_transform(Xt=(new + 3).numpy())).max() < 1e-9


def test_maps_at_coupled_points_are_the_barycentric_projection() -> None:
    x0, x1, _ = _sets()
    c = couple(x0, x1, method="sinkhorn", reg=2.0)
    bary = c.barycentric_projection(x1)
    assert torch.allclose(c.transform(x0, kind="barycentric"), bary, atol=1e-12)
    # the entropic map extends the plan's rows: same values on the support
    assert torch.allclose(c.transform(x0, kind="entropic"), bary, atol=1e-8)
    col = (c.plan().T @ x0) / c.col_mass()[:, None]
    assert torch.allclose(c.inverse_transform(x1, kind="entropic"), col, atol=1e-8)


def test_exact_permutation_round_trip() -> None:
    x0, x1, _ = _sets(30, 30)
    c = couple(x0, x1, method="exact")
    assert torch.allclose(c.transform(x0), x1[c.permutation], atol=1e-12)
    assert torch.allclose(c.inverse_transform(c.transform(x0)), x0, atol=1e-12)


def test_entropic_map_of_gaussians_has_the_closed_form_slope() -> None:
    # 1-D N(0, 1) -> N(2, 4) with reg = 2σ²: the entropic plan is Gaussian with
    # cross-covariance C = (D - s)/2, s = σ², D = sqrt(16 + s²); E[Y | x] = 2 + C x.
    n, reg = 1500, 1.0
    q = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    z = math.sqrt(2) * torch.erfinv(2 * q - 1)
    x0, x1 = z[:, None], (2 + 2 * z)[:, None]
    c = couple(x0, x1, method="sinkhorn", reg=reg)
    new = torch.linspace(-1.3, 1.3, 27, dtype=torch.float64)[:, None] + 0.01  # off-sample
    y = c.transform(new, kind="entropic")[:, 0]
    slope, icept = np.polyfit(new[:, 0].numpy(), y.numpy(), 1)
    s = reg / 2
    expected = (math.sqrt(16 + s * s) - s) / 2
    assert abs(slope - expected) < 0.03 and abs(icept - 2) < 0.03
    assert abs(expected - 2) > 0.2  # distinguishable from the Monge map


def test_numpy_in_numpy_out_and_tensor_in_tensor_out() -> None:
    x0, x1, new = _sets()
    c = couple(x0.numpy(), x1.numpy(), method="sinkhorn", reg=1.0)
    out = c.transform(new.numpy().astype(np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (30, 3)
    t = c.transform(new.float())
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    assert np.allclose(out, t.numpy(), atol=1e-6)


@pytest.mark.parametrize("kind", ["barycentric", "entropic"])
def test_chunking_does_not_change_the_result(kind: str) -> None:
    x0, x1, new = _sets()
    c = couple(x0, x1, method="sinkhorn", reg=1.0)
    whole = transform(c, new, x0=x0, x1=x1, kind=kind)
    tiny = transform(c, new, x0=x0, x1=x1, kind=kind, max_bytes=1)  # one row per chunk
    assert torch.allclose(whole, tiny, atol=1e-12)
    back = inverse_transform(c, new, x0=x0, x1=x1, kind=kind, max_bytes=3000)
    assert torch.allclose(back, inverse_transform(c, new, x0=x0, x1=x1, kind=kind), atol=1e-12)


def test_images_keep_their_shape() -> None:
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.rand(12, 2, 4, 4, generator=g), torch.rand(12, 2, 4, 4, generator=g) + 1
    c = couple(x0, x1, method="exact")
    assert c.transform(x0[:5] + 0.01).shape == (5, 2, 4, 4)


@pytest.mark.parametrize(
    ("method", "options"),
    [("exact", {}), ("sinkhorn", {"reg": 1.0}), ("independent", {}), ("partial", {"mass": 0.6})],
)
def test_transposed_products_match_the_dense_plan(method: str, options: dict) -> None:
    """The inverse barycentres use ``Pᵀ y``: each store's fast path and the block-wise default."""
    from sbflow.couplings._stores import PlanStore

    x0, x1, _ = _sets()
    c = couple(x0, x1, method=method, **options)
    y = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    want = c.plan().T @ y
    assert torch.allclose(c._store.rmatmul(y), want, rtol=1e-12, atol=1e-15)
    assert torch.allclose(PlanStore.rmatmul(c._store, y), want, rtol=1e-12, atol=1e-15)


def test_zero_mass_sources_are_not_used_as_neighbours() -> None:
    x0 = torch.tensor([[0.0], [1.0], [10.0]], dtype=torch.float64)
    x1 = torch.tensor([[5.0], [6.0]], dtype=torch.float64)
    a = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    c = couple(x0, x1, method="exact", a=a)
    # 9.9 is nearest to the massless 10.0; its neighbour with mass is 1.0 (-> 6.0)
    assert c.transform(torch.tensor([[9.9]], dtype=torch.float64)).item() == pytest.approx(14.9)


def test_input_errors() -> None:
    x0, x1, new = _sets()
    exact = couple(x0, x1, method="exact")
    with pytest.raises(ValueError, match="kind='barycentric'"):
        exact.transform(new, kind="entropic")
    with pytest.raises(ValueError, match="kind must be one of"):
        exact.transform(new, kind="nearest")
    with pytest.raises(ValueError, match="shape"):
        exact.transform(torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="computed on"):
        transform(exact, new, x0=x0[:5], x1=x1)
    exact.support = None
    with pytest.raises(ValueError, match=r"x0=\.\.\. and x1=\.\.\."):
        exact.transform(new)
    assert torch.equal(exact.transform(new, x0=x0, x1=x1), transform(exact, new, x0=x0, x1=x1))
    labelled = couple(
        x0, x1, method="sinkhorn", reg=1.0, y0=torch.arange(40) % 2, y1=torch.arange(50) % 2
    )
    with pytest.raises(ValueError, match="class labels"):
        labelled.transform(new, kind="entropic")
    assert labelled.transform(new).shape == new.shape  # auto: barycentric
