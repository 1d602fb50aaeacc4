"""Random garbage for the options of fit and Bridge only ever raises ValueError/TypeError.

Each example either runs (a valid value: a two-step fit, or a transport of a closed-form
bridge) or raises ``ValueError``/``TypeError`` naming the argument; any other exception (a raw
torch error, an ``AttributeError``, a ``KeyError``) fails the property. The default profile
draws 10 examples per test; ``HYPOTHESIS_PROFILE=long`` draws 500.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import sbflow
from sbflow import Bridge
from sbflow.gaussian import GaussianBridge

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_G = torch.Generator().manual_seed(5)
X0 = torch.randn(12, 2, generator=_G)
X1 = torch.randn(12, 2, generator=_G) + 2
TINY = dict(steps=2, hidden=4, depth=1, batch_size=8, progress=False, prefetch=0)

# values of every kind a caller might pass by mistake; the numbers stay small, so that a valid
# draw still means a tiny run
GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 6),
    # small numbers (a valid one runs quickly), or absurd ones (refused before any work)
    st.floats(allow_nan=True, allow_infinity=True).filter(
        lambda v: not math.isfinite(v) or abs(v) <= 10 or abs(v) >= 1e20
    ),
    st.text(max_size=3),
    st.lists(st.integers(-2, 2), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.just(object()),
    st.just(torch.zeros(2)),
)

FIT_OPTIONS = (
    "steps",
    "batch_size",
    "lr",
    "ema_decay",
    "warmup_steps",
    "grad_clip",
    "seed",
    "sigma",
    "times",
    "key",
    "progress",
    "num_threads",
    "hidden",
    "method",
    "device",
    "paired",
    "callbacks",
    "model_config",
)


@given(option=st.sampled_from(FIT_OPTIONS), value=GARBAGE)
def test_fit_options_fail_only_with_value_or_type_errors(option: str, value: Any) -> None:
    try:
        sbflow.fit(X0, X1, **{**TINY, option: value})
    except (ValueError, TypeError) as err:
        assert str(err), option
    except FloatingPointError as err:
        # a finite but absurd learning rate diverges; the trainer reports it (with advice)
        assert option == "lr" and "lower lr" in str(err), (option, value, err)
    # any other exception propagates and fails the test


_BRIDGE = Bridge.from_gaussian(
    GaussianBridge([0.0, 0.0], torch.eye(2), [2.0, 0.0], torch.eye(2), 0.5)
)
TRANSPORT_OPTIONS = ("t_start", "t_end", "steps", "sde", "generator", "reverse", "method")


@given(option=st.sampled_from(TRANSPORT_OPTIONS), value=GARBAGE)
def test_transport_options_fail_only_with_value_or_type_errors(option: str, value: Any) -> None:
    options: dict[str, Any] = {"steps": 4, option: value}
    try:
        out = _BRIDGE.transport(X0[:3], **options)
    except (ValueError, TypeError) as err:
        assert str(err), option
    else:
        assert torch.isfinite(out).all() and out.shape == (3, 2)


@given(n=GARBAGE, use_generator=st.booleans())
def test_sample_count_fails_only_with_value_or_type_errors(n: Any, use_generator: bool) -> None:
    bridge = _flow()
    gen = torch.Generator().manual_seed(0) if use_generator else None
    try:
        out = bridge.sample(n, generator=gen)
    except (ValueError, TypeError) as err:
        assert "n must" in str(err)
    else:
        assert out.shape == (int(n), 2)


_FLOW: list[Bridge] = []


def _flow() -> Bridge:
    """A Gaussian-source flow, fitted once for the module (two steps)."""
    if not _FLOW:
        _FLOW.append(sbflow.fit(None, X1, method="fm", **TINY))
    return _FLOW[0]
