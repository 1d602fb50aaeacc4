"""OTMap: the scikit-learn style estimator over couplings and their out-of-sample maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbflow.couplings import couple
from sbflow.estimators import OTMap, _Params


def _data(n0: int = 80, n1: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n0, 3)), 1.5 * rng.normal(size=(n1, 3)) + 4


def test_exact_map_agrees_with_pot_emd_transport() -> None:
    ot = pytest.importorskip("ot")
    x0, x1 = _data()
    new = np.random.default_rng(1).normal(size=(25, 3))
    ours = OTMap(max_samples=None).fit(x0, x1)
    da = ot.da.EMDTransport().fit(Xs=x0, Xt=x1)
    assert np.abs(ours.transform(new) - da.transform(Xs=new)).max() < 1e-9
    assert np.abs(ours.inverse_transform(new) - da.inverse_transform(Xt=new)).max() < 1e-9


def test_sinkhorn_map_is_the_couplings_entropic_map() -> None:
    x0, x1 = _data()
    m = OTMap("sinkhorn", reg=2.0, max_samples=None).fit(x0, x1)
    c = couple(x0, x1, method="sinkhorn", reg=2.0)
    new = x0[:7] + 0.1
    assert np.allclose(m.transform(new), c.transform(new, kind="entropic"), atol=1e-10)


def test_subsampling_is_seeded_and_bounded() -> None:
    x0, x1 = _data(300, 200)
    a = OTMap(max_samples=50, seed=3).fit(x0, x1)
    b = OTMap(max_samples=50, seed=3).fit(x0, x1)
    c = OTMap(max_samples=50, seed=4).fit(x0, x1)
    assert a.coupling_.n == a.coupling_.m == 50
    assert np.array_equal(a.transform(x0), b.transform(x0))
    assert not np.array_equal(a.transform(x0), c.transform(x0))
    # every fitted point comes from the data
    s0 = a.coupling_.support[0].numpy()
    assert all((np.abs(x0 - p).sum(1) == 0).any() for p in s0)


def test_params_round_trip_and_errors() -> None:
    m = OTMap("sinkhorn", reg=0.5, max_samples=10, kind="entropic", seed=2)
    assert m.get_params() == {
        "kind": "entropic",
        "max_samples": 10,
        "method": "sinkhorn",
        "reg": 0.5,
        "seed": 2,
    }
    assert m.set_params(reg=1.0) is m and m.reg == 1.0
    with pytest.raises(ValueError, match=r"(?i)invalid parameter"):
        m.set_params(blur=1.0)
    # the fallback used without scikit-learn behaves the same
    assert _Params.get_params(m) == m.get_params()
    assert _Params.set_params(m, seed=5) is m and m.seed == 5
    with pytest.raises(ValueError, match=r"(?i)invalid parameter"):
        _Params.set_params(m, blur=1.0)
    x0, x1 = _data()
    with pytest.raises(ValueError, match="not fitted"):
        OTMap().transform(x0)
    with pytest.raises(ValueError, match="method must be"):
        OTMap("emd").fit(x0, x1)
    with pytest.raises(ValueError, match="reg applies"):
        OTMap("exact", reg=1.0).fit(x0, x1)
    with pytest.raises(ValueError, match="fit\\(X0, X1\\)"):
        OTMap().fit(x0)
    with pytest.raises(ValueError, match="max_samples"):
        OTMap(max_samples=0).fit(x0, x1)


def test_types_follow_the_input() -> None:
    x0, x1 = _data()
    m = OTMap().fit(x0, x1)
    assert isinstance(m.transform(x0.astype(np.float32)), np.ndarray)
    assert m.transform(x0.astype(np.float32)).dtype == np.float32
    out = m.fit_transform(torch.as_tensor(x0), x1)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64


def test_works_in_a_scikit_learn_pipeline() -> None:
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    x0, x1 = _data()
    est = OTMap("sinkhorn", reg=1.0, max_samples=60)
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    pipe = Pipeline([("map", est), ("neg", FunctionTransformer(np.negative))])
    out = pipe.fit(x0, x1).transform(x0)
    direct = OTMap("sinkhorn", reg=1.0, max_samples=60).fit(x0, x1).transform(x0)
    assert np.allclose(out, -direct)
    assert np.allclose(pipe.fit_transform(x0, x1), -direct)
