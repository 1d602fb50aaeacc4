"""Bridge files: what a saved bridge holds, and how files of earlier versions load.

Format ``sbflow-bridge-2`` (a ``torch.save`` dict of plain values and tensors, read back
without unpickling code):

- ``model``: ``{"name", "config", "state"}`` — a registered model (:mod:`sbflow.models.registry`)
  rebuilt with its config (size-checked before anything is allocated), then its weights;
- ``sigma``: σ in data units per unit of the user's time; ``simulation``: ``"ode"``/``"sde"``;
- ``normalizer``, ``times``, ``feature_shape``, ``method``, ``base``, ``options``, ``history``;
- ``data_range`` (optional): ``{"low", "high"}`` tensors of shape ``(len(times), *feature_shape)``,
  the per-feature range of each training set (:attr:`Bridge.data_range`). Files without it
  (written before it existed, and all 0.1 files) load with ``data_range = None``.

Format ``sbflow-bridge-1`` (sbflow 0.1) stored an MLP by its sizes and σ in training units
(standardised data, per unit of normalised time); it loads as the same bridge, with σ
converted to data units (:func:`sbflow.bridge.timemap.from_internal`).
"""

from __future__ import annotations

import os
from typing import Any

from sbflow._checks import check_path
from sbflow.bridge._bridge import Bridge
from sbflow.bridge.timemap import TimeMap, from_internal, scalar_scale
from sbflow.models.registry import build_model, describe_model
from sbflow.training.batches import Normalizer
from sbflow.training.checkpoint import check_finite_state, read_state

__all__ = ["FORMAT", "bridge_from_state", "bridge_state", "load"]

FORMAT = "sbflow-bridge-2"
_LEGACY = "sbflow-bridge-1"


def bridge_state(bridge: Bridge) -> dict[str, Any]:
    """The dict that :func:`bridge_from_state` rebuilds ``bridge`` from.

    Example:
        >>> from sbflow.gaussian import GaussianBridge
        >>> state = bridge_state(Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [1.0], [[1.0]], 0.5)))
        >>> state["format"], state["model"]["name"], state["sigma"]
        ('sbflow-bridge-2', 'gaussian-bridge', 0.5)
    """  # noqa: E501
    name, config = describe_model(bridge.model)
    state: dict[str, Any] = {
        "format": FORMAT,
        "method": bridge.method,
        "model": {
            "name": name,
            "config": config,
            "state": {k: v.detach().cpu() for k, v in bridge.model.state_dict().items()},
        },
        "sigma": bridge.sigma,
        "simulation": bridge.simulation,
        "normalizer": bridge.normalizer.state_dict(),
        "times": bridge.times,
        "feature_shape": list(bridge.feature_shape),
        "base": bridge.base,
        "options": bridge.options,
        "history": bridge.history,
    }
    if scalar_scale(bridge.normalizer.scale) is None and bridge.sigma_internal > 0:
        state["sigma_internal"] = bridge.sigma_internal
    if bridge.data_range is not None:
        low, high = bridge.data_range
        state["data_range"] = {"low": low.clone(), "high": high.clone()}
    return state


def _upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A ``sbflow-bridge-1`` dict as ``sbflow-bridge-2`` (same bridge, σ in data units)."""
    cfg = state["model_config"]
    two = bool(cfg["two_heads"])
    config = {"dim": int(cfg["dim"]), "hidden": int(cfg["hidden"]), "depth": int(cfg["depth"])}
    sigma_z = float(state["sigma"]) if two else 0.0
    scale = scalar_scale(state["normalizer"]["scale"])
    span = TimeMap(state["times"]).span
    new = {
        "format": FORMAT,
        "method": state["method"],
        "model": {
            "name": "flow-score-mlp" if two else "time-mlp",
            "config": config,
            "state": state["model"],
        },
        "sigma": from_internal(sigma_z, scale=scale, span=span) if scale else 0.0,
        "simulation": "sde" if two else "ode",
        **{k: state[k] for k in ("normalizer", "times", "feature_shape", "base", "history")},
        "options": {**state["options"], "upgraded_from": _LEGACY},
    }
    if scale is None and sigma_z > 0:
        new["sigma_internal"] = sigma_z
    return new


def bridge_from_state(state: dict[str, Any], *, device: Any = "cpu") -> Bridge:
    """Rebuild a bridge from :func:`bridge_state` (or a ``sbflow-bridge-1`` dict).

    Raises:
        ValueError: Not a bridge dict, an unknown or oversized model, or weights that do not
            fit the model.

    Example:
        >>> from sbflow.gaussian import GaussianBridge
        >>> bridge = Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 0.5))
        >>> bridge_from_state(bridge_state(bridge)).transport(torch.zeros(1, 1), sde=False)
        tensor([[2.0000]])
    """
    from sbflow._fit_inputs import resolve_device

    if not isinstance(state, dict) or state.get("format") not in (FORMAT, _LEGACY):
        raise ValueError("not an sbflow bridge file (unknown format).")
    check_finite_state(state, "bridge state")  # NaN weights would give NaN transports
    if state["format"] == _LEGACY:
        state = _upgrade(state)
    spec = state["model"]
    model = build_model(spec["name"], **spec["config"])
    try:
        model.load_state_dict(spec["state"])
    except RuntimeError as err:
        raise ValueError(f"the weights do not fit model {spec['name']!r}: {err}") from err
    norm = Normalizer(state["normalizer"]["shift"], state["normalizer"]["scale"])
    return Bridge(
        model.to(resolve_device(device)),
        method=state["method"],
        feature_shape=state["feature_shape"],
        times=state["times"],
        normalizer=norm,
        sigma=state["sigma"],
        simulation=state["simulation"],
        base=state["base"],
        options=state["options"],
        history=state["history"],
        sigma_internal=state.get("sigma_internal"),
        data_range=_read_range(state.get("data_range")),
    )


def _read_range(entry: Any) -> tuple[Any, Any] | None:
    """The ``data_range`` entry as ``(low, high)`` (``None`` when the file has none)."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or not {"low", "high"} <= entry.keys():
        raise ValueError("the entry 'data_range' must hold 'low' and 'high' tensors.")
    return entry["low"], entry["high"]


def load(path: str | os.PathLike[str], *, device: Any = "cpu") -> Bridge:
    """Load a bridge written by :meth:`Bridge.save` (any sbflow version).

    Raises:
        ValueError: If the file is missing or is not an sbflow bridge.

    Example:
        >>> from sbflow.gaussian import GaussianBridge
        >>> gb = GaussianBridge([0.0], [[1.0]], [1.0], [[1.0]], 0.5)
        >>> path = Bridge.from_gaussian(gb).save("gaussian.pt")
        >>> load(path).sigma
        0.5
    """
    check_path(path, "path")
    state = read_state(path, "bridge file")
    try:
        return bridge_from_state(state, device=device)
    except KeyError as err:
        raise ValueError(
            f"{path}: not a complete sbflow bridge file (the entry {err.args[0]!r} is missing); "
            f"re-create it with Bridge.save."
        ) from err
    except TypeError as err:
        raise ValueError(
            f"{path}: not a valid sbflow bridge file ({err}); re-create it with Bridge.save."
        ) from err
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
