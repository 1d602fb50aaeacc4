"""Malformed input to fit, Bridge, load, leave_one_out and get_method gets one clear error.

Every rejection is a ``ValueError`` or ``TypeError`` (never a raw torch error, a crash or a
silently wrong result) whose message names the argument and says what to do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import sbflow
from sbflow import Bridge
from sbflow.fitting import leave_one_out
from sbflow.methods import get_method
from sbflow.training.checkpoint import write_state

_G = torch.Generator().manual_seed(13)
X0 = torch.randn(20, 2, dtype=torch.float64, generator=_G)
X1 = torch.randn(20, 2, dtype=torch.float64, generator=_G) + 2
TINY = dict(steps=5, hidden=8, depth=1, batch_size=16, progress=False, prefetch=0)

# words that tell the user what to do
_ADVICE = re.compile(
    r"\b(pass|use|choose|give|remove|must|needs?|rescale|re-create|check|leave)\b",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny SDE bridge, one tiny Gaussian-source flow, and files made from them."""
    sb = sbflow.fit(X0, X1, method="sb-cfm", **TINY)
    fm = sbflow.fit(None, X1, method="fm", **TINY)
    root = tmp_path_factory.mktemp("inputs")
    files = {"good": sb.save(root / "good.pt")}
    edits: dict[str, Callable[[dict[str, Any]], None]] = {
        "zero_scale": lambda s: s["normalizer"]["scale"].zero_(),
        "negative_scale": lambda s: s["normalizer"]["scale"].fill_(-1.0),
        "huge_model": lambda s: s["model"]["config"].update(hidden=30000, depth=20),
        "bad_model_config": lambda s: s["model"]["config"].update(hidden=-4),
        "nan_weights": lambda s: next(iter(s["model"]["state"].values())).fill_(math.nan),
        "no_model": lambda s: s.pop("model"),
    }
    for name, edit in edits.items():
        state = sb.state_dict()
        edit(state)
        files[name] = write_state(root / f"{name}.pt", state)
    return {"sb": sb, "fm": fm, "files": files, "root": root}


def _fit(**options: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda env: sbflow.fit(X0, X1, **{**TINY, **options})


def _load(name: str, **options: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda env: sbflow.load(env["files"][name], **options)


# (id, call, exception type, what the message must name)
CASES: list[tuple[str, Callable[[dict[str, Any]], Any], type[Exception], str]] = [
    # fit
    ("fit steps=0", _fit(steps=0), ValueError, "steps"),
    ("fit steps=2.5", _fit(steps=2.5), ValueError, "steps"),
    ("fit batch_size=True", _fit(batch_size=True), TypeError, "batch_size"),
    ("fit lr=-1", _fit(lr=-1), ValueError, "lr"),
    ("fit lr=nan", _fit(lr=math.nan), ValueError, "lr"),
    ("fit ema_decay=1.5", _fit(ema_decay=1.5), ValueError, "ema_decay"),
    ("fit ema_decay='x'", _fit(ema_decay="x"), TypeError, "ema_decay"),
    ("fit warmup_steps=-1", _fit(warmup_steps=-1), ValueError, "warmup_steps"),
    ("fit grad_clip=0", _fit(grad_clip=0), ValueError, "grad_clip"),
    ("fit weight_decay='x'", _fit(weight_decay="x"), TypeError, "weight_decay"),
    ("fit checkpoint_every=0", _fit(checkpoint_every=0), ValueError, "checkpoint_every"),
    ("fit tensorboard without run_dir", _fit(tensorboard=True), ValueError, "run_dir"),
    ("fit device='gpu'", _fit(device="gpu"), ValueError, "device"),
    ("fit method=3", _fit(method=3), TypeError, "method"),
    ("fit sigma='x'", _fit(sigma="x"), TypeError, "sigma"),
    ("fit sigma=-1", _fit(sigma=-1.0), ValueError, "sigma"),
    ("fit times=[0, 0]", _fit(times=[0, 0]), ValueError, "times"),
    ("fit times=3", _fit(times=3), TypeError, "times"),
    ("fit key=3", _fit(key=3), TypeError, "key"),
    ("fit progress='yes'", _fit(progress="yes"), TypeError, "progress"),
    ("fit paired='yes'", _fit(paired="yes"), TypeError, "paired"),
    ("fit num_threads=0", _fit(num_threads=0), ValueError, "num_threads"),
    ("fit precision='fp16'", _fit(precision="fp16"), ValueError, "precision"),
    ("fit seed=-1", _fit(seed=-1), ValueError, "seed"),
    ("fit callbacks=[3]", _fit(callbacks=[3]), TypeError, "callbacks"),
    ("fit model_config=3", _fit(model="time-mlp", model_config=3), TypeError, "model_config"),
    ("fit run_dir=3", _fit(run_dir=3), TypeError, "run_dir"),
    (
        "fit coupling option max_iter=2.5",
        lambda env: sbflow.fit(X0, X1, method=get_method("ot-cfm", max_iter=2.5), **TINY),
        ValueError,
        "max_iter",
    ),
    # Bridge
    ("sample(-1)", lambda env: env["fm"].sample(-1), ValueError, "n"),
    ("sample(2.5)", lambda env: env["fm"].sample(2.5), ValueError, "n"),
    (
        "sample generator='abc'",
        lambda env: env["fm"].sample(3, generator="abc"),
        TypeError,
        "generator",
    ),
    (
        "transport generator='abc'",
        lambda env: env["sb"].transport(X0, generator="abc"),
        TypeError,
        "generator",
    ),
    ("transport steps=0", lambda env: env["sb"].transport(X0, steps=0), ValueError, "steps"),
    ("transport sde='yes'", lambda env: env["sb"].transport(X0, sde="yes"), TypeError, "sde"),
    ("transport atol=-1", lambda env: env["sb"].transport(X0, atol=-1), ValueError, "atol"),
    ("transport rtol=0", lambda env: env["sb"].transport(X0, rtol=0), ValueError, "rtol"),
    (
        "transport t_start='abc'",
        lambda env: env["sb"].transport(X0, t_start="abc"),
        TypeError,
        "t_start",
    ),
    ("transport t_end=5", lambda env: env["sb"].transport(X0, t_end=5.0), ValueError, "t_end"),
    (
        "transport reverse='yes'",
        lambda env: env["sb"].transport(X0, reverse="yes"),
        TypeError,
        "reverse",
    ),
    (
        "transport x of another shape",
        lambda env: env["sb"].transport(torch.zeros(3, 5)),
        ValueError,
        "x",
    ),
    (
        "trajectory times='abc'",
        lambda env: env["sb"].trajectory(X0, times="abc"),
        TypeError,
        "times",
    ),
    (
        "trajectory times=[0, 0]",
        lambda env: env["sb"].trajectory(X0, times=[0.0, 0.0]),
        ValueError,
        "times",
    ),
    (
        "evaluate n_times=1.5",
        lambda env: env["sb"].evaluate(X0, X1, n_times=1.5),
        ValueError,
        "n_times",
    ),
    (
        "evaluate sde_steps=0",
        lambda env: env["sb"].evaluate(X0, X1, sde_steps=0),
        ValueError,
        "sde_steps",
    ),
    ("evaluate x1=None", lambda env: env["sb"].evaluate(X0, None), TypeError, "x1"),
    (
        "log_prob generator='abc'",
        lambda env: env["fm"].log_prob(X1, trace="hutchinson", generator="abc"),
        TypeError,
        "generator",
    ),
    ("log_prob x=None", lambda env: env["fm"].log_prob(None), TypeError, "x"),
    ("plot x0='abc'", lambda env: env["sb"].plot("abc"), TypeError, "x0"),
    ("save path=3", lambda env: env["sb"].save(3), TypeError, "path"),
    # load
    ("load path=None", lambda env: sbflow.load(None), TypeError, "path"),
    ("load device='gpu'", _load("good", device="gpu"), ValueError, "device"),
    ("load zero scale", _load("zero_scale"), ValueError, "scale"),
    ("load negative scale", _load("negative_scale"), ValueError, "scale"),
    ("load oversized model_config", _load("huge_model"), ValueError, "config"),
    ("load invalid model_config", _load("bad_model_config"), ValueError, "config"),
    ("load NaN weights", _load("nan_weights"), ValueError, "model"),
    ("load without a model", _load("no_model"), ValueError, "model"),
    # leave_one_out
    (
        "leave_one_out snapshots=3",
        lambda env: leave_one_out(3, [0, 1, 2], index=1, **TINY),
        TypeError,
        "snapshots",
    ),
    (
        "leave_one_out times='abc'",
        lambda env: leave_one_out([X0, X1, X1], "abc", index=1, **TINY),
        TypeError,
        "times",
    ),
    (
        "leave_one_out index=0",
        lambda env: leave_one_out([X0, X1, X1], [0, 1, 2], index=0, **TINY),
        ValueError,
        "index",
    ),
    (
        "leave_one_out sde='yes'",
        lambda env: leave_one_out([X0, X1, X1], [0, 1, 2], index=1, sde="yes", **TINY),
        TypeError,
        "sde",
    ),
    # get_method
    ("get_method name=None", lambda env: get_method(None), TypeError, "method"),
    ("get_method unknown name", lambda env: get_method("ot_cfn"), ValueError, "method"),
    ("get_method sigma=True", lambda env: get_method("sb-cfm", sigma=True), TypeError, "sigma"),
    ("get_method tol=-1", lambda env: get_method("sb-cfm", tol=-1), ValueError, "tol"),
    ("get_method unknown option", lambda env: get_method("ot-cfm", atol=1), TypeError, "atol"),
]


@pytest.mark.parametrize(
    ("call", "kind", "name"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_input_gets_one_clear_error(
    env: dict[str, Any], call: Callable[[dict[str, Any]], Any], kind: type[Exception], name: str
) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        call(env)
    message = str(info.value)
    assert type(info.value) is kind or isinstance(info.value, kind), message
    assert name in message, message
    assert _ADVICE.search(message), message


def test_the_batch_memory_is_checked_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sbflow._memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 2**20)
    run = tmp_path / "run"
    # 600 × 600 float64 costs (2.7 MiB) > half of 1 MiB free; the data have only 20 rows
    with pytest.raises(memory.InsufficientMemoryError, match="batch_size") as info:
        sbflow.fit(X0, X1, method="ot-cfm", run_dir=run, **{**TINY, "batch_size": 600})
    assert "keops" in str(info.value).lower() and "20 samples" in str(info.value)
    assert not run.exists()  # nothing was trained or written
    # no dense coupling, nothing to check: independent pairs train with the same batch
    bridge = sbflow.fit(X0, X1, method="i-cfm", **{**TINY, "batch_size": 600, "steps": 1})
    assert bridge.method == "i-cfm"


def test_a_bridge_state_with_nan_weights_is_refused(env: dict[str, Any]) -> None:
    state = env["sb"].state_dict()
    next(iter(state["model"]["state"].values())).fill_(math.nan)
    with pytest.raises(ValueError, match="NaN"):
        Bridge.from_state_dict(state)


def test_edited_model_config_is_refused_before_allocating(env: dict[str, Any]) -> None:
    path = env["files"]["huge_model"]
    with pytest.raises(ValueError) as info:
        sbflow.load(path)
    message = str(info.value)
    assert str(path) in message and "parameters" in message and "limit" in message


def test_whole_floats_are_accepted_as_integers() -> None:
    bridge = sbflow.fit(X0, X1, **{**TINY, "steps": 2.0, "batch_size": 8.0})
    assert bridge.options["steps"] == 2 and isinstance(bridge.options["steps"], int)
