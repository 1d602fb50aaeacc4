"""Bad input gives a clear error; non-convergence is never silent."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from sbflow.couplings import (
    ConvergenceError,
    ConvergenceWarning,
    ExactOT,
    PartialOT,
    Sinkhorn,
    UnbalancedSinkhorn,
    couple,
)

METHODS = ["independent", "exact", "sinkhorn", "unbalanced", "partial"]


def _xy(n: int = 6, m: int = 6, d: int = 2):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(
        m, d, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize("method", METHODS)
def test_mismatched_feature_shapes(method: str) -> None:
    with pytest.raises(ValueError, match="feature shape"):
        couple(torch.zeros(4, 2), torch.zeros(4, 3), method)


@pytest.mark.parametrize("method", METHODS)
def test_empty_sets(method: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        couple(torch.zeros(0, 2), torch.zeros(4, 2), method)
    with pytest.raises(ValueError, match="empty"):
        couple(torch.zeros(4, 2), np.zeros((0, 2)), method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_samples(method: str, bad: float) -> None:
    x0, x1 = _xy()
    x1[2, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        couple(x0, x1, method)


@pytest.mark.parametrize("method", METHODS)
def test_bad_weights(method: str) -> None:
    x0, x1 = _xy()
    with pytest.raises(ValueError, match="negative"):
        couple(x0, x1, method, a=torch.tensor([0.5, 0.5, -0.2, 0.1, 0.05, 0.05]))
    with pytest.raises(ValueError, match="sum to zero"):
        couple(x0, x1, method, b=torch.zeros(6))
    with pytest.raises(ValueError, match="NaN or infinite"):
        couple(x0, x1, method, a=torch.tensor([math.nan] + [0.2] * 5))
    with pytest.raises(ValueError, match="length 6"):
        couple(x0, x1, method, a=torch.ones(5) / 5)


@pytest.mark.parametrize("method", ["independent", "exact", "sinkhorn"])
def test_balanced_solvers_refuse_unequal_masses(method: str) -> None:
    x0, x1 = _xy()
    opts = {"rel_reg": 0.5} if method == "sinkhorn" else {}
    with pytest.raises(ValueError, match=r"equal total masses.*unbalanced"):
        couple(x0, x1, method, a=torch.ones(6), b=torch.ones(6) / 6)
    # equal but unnormalised masses are fine, and kept
    c = couple(x0, x1, method, a=torch.ones(6) * 2, b=torch.ones(6) * 2, **opts)
    assert float(c.plan().sum()) == pytest.approx(12.0)


def test_unbalanced_and_partial_accept_unequal_masses() -> None:
    x0, x1 = _xy()
    a, b = torch.ones(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64) / 6
    assert UnbalancedSinkhorn(reg=1.0)(x0, x1, a, b).converged
    c = PartialOT(mass=0.5)(x0, x1, a, b)
    assert float(c.plan().sum()) == pytest.approx(0.5)


@pytest.mark.parametrize("reg", [0.0, -1.0, math.nan, math.inf])
def test_non_positive_reg(reg: float) -> None:
    with pytest.raises(ValueError, match="reg"):
        Sinkhorn(reg=reg)
    with pytest.raises(ValueError, match="reg"):
        UnbalancedSinkhorn(reg=reg)
    with pytest.raises(ValueError, match="reg"):
        PartialOT(reg=reg)
    with pytest.raises(ValueError, match="rel_reg"):
        Sinkhorn(rel_reg=reg)


def test_other_bad_options() -> None:
    with pytest.raises(ValueError, match="reg_marginal"):
        UnbalancedSinkhorn(reg_marginal=0.0)
    with pytest.raises(ValueError, match="backend"):
        Sinkhorn(backend="gpu")
    with pytest.raises(ValueError, match="reg_scale"):
        Sinkhorn(reg_scale="max")
    with pytest.raises(ValueError, match="anneal_factor"):
        Sinkhorn(anneal_factor=1.5)
    with pytest.raises(ValueError, match="max_iter"):
        ExactOT(max_iter=0)


def test_zero_cost_scale_needs_absolute_reg() -> None:
    x = torch.ones(5, 2)
    with pytest.raises(ValueError, match="absolute reg"):
        couple(x, x, "sinkhorn")
    assert couple(x, x, "sinkhorn", reg=1.0).converged


@pytest.mark.parametrize("mass", [0.0, -0.1, 1.01, 2.0])
def test_mass_fraction_out_of_range(mass: float) -> None:
    with pytest.raises(ValueError, match=r"mass must lie in \(0, 1\]"):
        PartialOT(mass=mass)


@pytest.mark.parametrize("method", METHODS)
def test_labels_leaving_a_class_empty(method: str) -> None:
    x0, x1 = _xy()
    with pytest.raises(ValueError, match=r"classes \[2\] occur only in y0"):
        couple(x0, x1, method, y0=[0, 1, 2, 0, 1, 0], y1=[0, 1, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="only in y1"):
        couple(x0, x1, method, y0=[0, 0, 0, 0, 0, 0], y1=[0, 1, 1, 0, 1, 0])


@pytest.mark.parametrize("method", METHODS)
def test_labels_of_wrong_length_or_missing_side(method: str) -> None:
    x0, x1 = _xy()
    with pytest.raises(ValueError, match="one label per sample"):
        couple(x0, x1, method, y0=[0, 1, 0], y1=[0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="both y0 and y1"):
        couple(x0, x1, method, y0=[0, 1, 0, 1, 0, 1])


def test_scalar_and_one_dimensional_samples_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        couple(torch.zeros(5), torch.zeros(5))


def test_sinkhorn_non_convergence_warns_or_raises() -> None:
    x0, x1 = _xy(40, 40)
    with pytest.warns(ConvergenceWarning, match="raise max_iter"):
        c = Sinkhorn(rel_reg=0.001, max_iter=3)(x0, x1 + 3)
    assert not c.converged and c.marginal_error > c.n_iter * 0  # reported, not hidden
    with pytest.raises(ConvergenceError, match="increase reg"):
        Sinkhorn(rel_reg=0.001, max_iter=3, strict=True)(x0, x1 + 3)
    # in float32 the advice includes float64; a plan that overflowed raises (issue 13)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Sinkhorn(rel_reg=0.001, max_iter=3)(x0.float(), x1.float() + 3)
        except ConvergenceError as err:
            assert "float64" in str(err)
        else:
            assert any("float64" in str(w.message) for w in caught)


def test_exact_non_convergence_warns_or_raises() -> None:
    x0, x1 = _xy(60, 60)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        c = ExactOT(max_iter=5)(x0, x1)
    assert not c.converged
    with pytest.raises(ConvergenceError):
        ExactOT(max_iter=5, strict=True)(x0, x1)


def test_explicit_keops_backend_fails_clearly_when_unavailable(monkeypatch) -> None:
    import sbflow.couplings.sinkhorn as sk

    monkeypatch.setattr(sk, "keops_status", lambda: (False, "no compiler"))
    x0, x1 = _xy()
    with pytest.raises(RuntimeError, match=r"pykeops is not usable.*no compiler"):
        Sinkhorn(backend="keops")(x0, x1)


def test_auto_backend_falls_back_with_one_warning(monkeypatch) -> None:
    import sbflow.couplings._keops as kp
    import sbflow.couplings.sinkhorn as sk

    monkeypatch.setattr(sk, "keops_status", lambda: (False, "probe failed for the test"))
    monkeypatch.setattr(sk, "KEOPS_THRESHOLD", 10)
    monkeypatch.setattr(kp, "_WARNED", set())
    x0, x1 = _xy()
    with pytest.warns(RuntimeWarning, match="probe failed for the test"):
        c = Sinkhorn(rel_reg=0.5, backend="auto")(x0, x1)
    assert c.backend == "torch" and c.converged
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Sinkhorn(rel_reg=0.5, backend="auto")(x0, x1)  # second time: no warning
