"""Malformed input to the public coupling entry points gets one clear error.

Every rejection is a ``ValueError`` or ``TypeError`` (never a raw torch/NumPy error, a crash or
a result) whose message names the argument and says what to do.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
import torch

from sbflow._checks import as_samples
from sbflow.couplings import SOLVERS, ExactOT, couple, get_solver
from sbflow.metrics import wasserstein

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _xy() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(13)
    x0 = torch.randn(20, 2, dtype=torch.float64, generator=g)
    return x0, torch.randn(20, 2, dtype=torch.float64, generator=g) + 2


X0, X1 = _xy()

# words that tell the user what to do
_ADVICE = re.compile(
    r"\b(pass|use|choose|give|remove|move|rescale|divide|drop|configure|must|needs?|"
    r"normalise|install|raise|increase)\b",
    re.IGNORECASE,
)

# (call, exception type, the argument name the message must contain)
CASES: list[tuple[str, Any, type[Exception], str]] = [
    ("x0 is None", lambda: couple(None, X1), TypeError, "x0"),
    ("x1 is a string", lambda: couple(X0, "abc"), TypeError, "x1"),
    ("x0 is a dict", lambda: couple({"a": 1}, X1), TypeError, "x0"),
    ("x0 is ragged", lambda: couple([[1.0, 2.0], [3.0]], X1), TypeError, "x0"),
    ("x0 is complex", lambda: couple(X0.to(torch.complex128), X1), TypeError, "x0"),
    ("x0 is a scalar", lambda: couple(torch.tensor(1.0), X1), ValueError, "x0"),
    ("x1 is 1-D", lambda: couple(X0, torch.zeros(20)), ValueError, "x1"),
    ("x1 is empty", lambda: couple(X0, torch.zeros(0, 2)), ValueError, "x1"),
    ("x1 has NaN", lambda: couple(X0, X1 * math.nan), ValueError, "x1"),
    ("feature shapes differ", lambda: couple(X0, torch.zeros(4, 3)), ValueError, "x1"),
    ("a is a string", lambda: couple(X0, X1, a="abc"), TypeError, "weights a"),
    ("a has the wrong length", lambda: couple(X0, X1, a=torch.ones(3)), ValueError, "weights a"),
    ("a is 2-D", lambda: couple(X0, X1, a=torch.ones(20, 1)), ValueError, "weights a"),
    ("a is negative", lambda: couple(X0, X1, a=-torch.ones(20)), ValueError, "weights a"),
    ("b is infinite", lambda: couple(X0, X1, b=torch.full((20,), math.inf)), ValueError, "b"),
    ("b is all zero", lambda: couple(X0, X1, b=torch.zeros(20)), ValueError, "weights b"),
    ("a is complex", lambda: couple(X0, X1, a=torch.ones(20) * 1j), TypeError, "weights a"),
    (
        "masses differ",
        lambda: couple(X0, X1, a=torch.ones(20), b=torch.ones(20) / 20),
        ValueError,
        "sum(a)",
    ),
    ("y0 without y1", lambda: couple(X0, X1, y0=np.zeros(20)), ValueError, "y1"),
    (
        "y0 has the wrong length",
        lambda: couple(X0, X1, y0=np.zeros(3), y1=np.zeros(20)),
        ValueError,
        "y0",
    ),
    ("unknown method", lambda: couple(X0, X1, method="sinkhorn2"), ValueError, "method"),
    ("exact has no reg", lambda: get_solver("exact", reg=0.1), TypeError, "reg"),
    ("sinkhorn has no mass", lambda: get_solver("sinkhorn", mass=0.5), TypeError, "mass"),
    ("max_iter=2.5", lambda: get_solver("exact", max_iter=2.5), ValueError, "max_iter"),
    ("partial max_iter=0", lambda: get_solver("partial", max_iter=0), ValueError, "max_iter"),
    ("max_iter is a string", lambda: get_solver("exact", max_iter="9"), TypeError, "max_iter"),
    ("strict='no'", lambda: get_solver("exact", strict="no"), TypeError, "strict"),
    ("tol=-1", lambda: get_solver("sinkhorn", tol=-1), ValueError, "tol"),
    ("reg=-1", lambda: get_solver("sinkhorn", reg=-1), ValueError, "reg"),
    ("reg is a string", lambda: get_solver("sinkhorn", reg="big"), TypeError, "reg"),
    ("mass=2", lambda: get_solver("partial", mass=2), ValueError, "mass"),
    ("mass is a string", lambda: get_solver("partial", mass="half"), TypeError, "mass"),
    (
        "reg_marginal=0",
        lambda: get_solver("unbalanced", reg_marginal=0),
        ValueError,
        "reg_marginal",
    ),
    ("unknown solver", lambda: get_solver("exact", solver="hungarian"), ValueError, "solver"),
    ("instance and options", lambda: get_solver(ExactOT(), strict=True), TypeError, "options"),
    ("W p=0.5", lambda: wasserstein(X0, X1, p=0.5), ValueError, "p must"),
    ("W p is a string", lambda: wasserstein(X0, X1, p="two"), TypeError, "p must"),
    ("W x is None", lambda: wasserstein(None, X1), TypeError, "x must"),
    ("W a is a string", lambda: wasserstein(X0, X1, a="x"), TypeError, "weights a"),
    ("W max_iter=0", lambda: wasserstein(X0, X1, max_iter=0), ValueError, "max_iter"),
    ("W shapes differ", lambda: wasserstein(X0, torch.zeros(5, 3)), ValueError, "y has"),
    ("W y is empty", lambda: wasserstein(X0, torch.zeros(0, 2)), ValueError, "y is empty"),
    ("pairs mode", lambda: couple(X0, X1).pairs(mode="x"), ValueError, "mode"),
    ("pairs n_pairs=-1", lambda: couple(X0, X1).pairs(n_pairs=-1), ValueError, "n_pairs"),
    (
        "projection on other targets",
        lambda: couple(X0, X1).barycentric_projection(torch.zeros(3, 2)),
        ValueError,
        "x1",
    ),
    (
        "float64 data overflowing float32",
        lambda: as_samples(np.full((3, 2), 1e39), "x0", dtype=torch.float32),
        ValueError,
        "x0 has finite values too large for float32",
    ),
    (
        "squared distances overflow",
        lambda: couple(X0 * 1e160, X1 * 1e160),
        ValueError,
        "x1",
    ),
    (
        "transport cost overflows",
        lambda: couple(X0, X1, a=np.full(20, 1e307), b=np.full(20, 1e307)),
        ValueError,
        "weights a",
    ),
]


@pytest.mark.parametrize(("label", "call", "kind", "name"), CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_named_and_explained(label, call, kind, name) -> None:
    with pytest.raises(kind) as info:
        call()
    message = str(info.value)
    assert name in message, message
    assert _ADVICE.search(message), f"no advice in: {message}"
    assert "Traceback" not in message and "new(): " not in message


# -- properties ---------------------------------------------------------------------------

_GARBAGE = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.booleans(),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.lists(st.text(max_size=2), min_size=1, max_size=3),
    st.floats(allow_nan=True),
)


def _bad_samples():
    shaped = st.sampled_from(["empty", "one-d", "three-d-empty", "nan", "inf", "ragged"])

    def build(kind: str) -> Any:
        return {
            "empty": np.zeros((0, 2)),
            "one-d": np.zeros(5),
            "three-d-empty": np.zeros((0, 2, 2)),
            "nan": np.full((4, 2), np.nan),
            "inf": np.array([[0.0, np.inf], [1.0, 1.0]]),
            "ragged": [[0.0, 1.0], [2.0]],
        }[kind]

    return st.one_of(_GARBAGE, shaped.map(build))


def _bad_weights():
    return st.one_of(
        _GARBAGE.filter(lambda w: w is not None),
        st.just(-np.ones(20)),
        st.just(np.full(20, np.nan)),
        st.just(np.r_[np.inf, np.ones(19)]),
        st.just(np.zeros(20)),
        st.just(np.ones(19)),
        st.just(np.ones((20, 2))),
    )


@given(method=st.sampled_from(sorted(SOLVERS)), x=_bad_samples(), side=st.sampled_from([0, 1]))
def test_every_coupling_rejects_bad_samples(method: str, x: Any, side: int) -> None:
    args = (x, X1) if side == 0 else (X0, x)
    with pytest.raises((ValueError, TypeError), match=r"x0|x1"):
        couple(*args, method=method)


@given(method=st.sampled_from(sorted(SOLVERS)), w=_bad_weights(), side=st.sampled_from("ab"))
def test_every_coupling_rejects_bad_weights(method: str, w: Any, side: str) -> None:
    with pytest.raises((ValueError, TypeError), match=f"weights {side}"):
        couple(X0, X1, method=method, **{side: w})


@given(x=_bad_samples(), w=_bad_weights())
def test_wasserstein_rejects_bad_input(x: Any, w: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=r"x |y |x must|y must"):
        wasserstein(x, X1)
    with pytest.raises((ValueError, TypeError), match="weights a"):
        wasserstein(X0, X1, a=w)


_OPTION_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)


@pytest.mark.parametrize("method", ["exact", "partial", "independent"])
@given(data=st.data())
def test_every_option_is_validated_by_name(method: str, data) -> None:
    """Any value for any option either builds the solver or raises naming the option."""
    from sbflow.couplings.api import _options

    for option in sorted(_options(SOLVERS[method])):
        value = data.draw(_OPTION_VALUES, label=option)
        try:
            get_solver(method, **{option: value})
        except (ValueError, TypeError) as err:
            assert option in str(err), str(err)
        else:
            # accepted values must be of a sensible kind: never text, lists or NaN
            assert not isinstance(value, (str, list)), (option, value)
            assert not (isinstance(value, float) and value != value), (option, value)


@pytest.mark.parametrize("method", ["sinkhorn", "unbalanced"])
def test_sinkhorn_options_are_validated_by_name(method: str) -> None:
    for option in ("max_iter", "stage_iters", "strict", "anneal", "anneal_factor"):
        for value in ("x", None, math.nan, math.inf, [1]):
            with pytest.raises((ValueError, TypeError), match=option):
                get_solver(method, **{option: value})
