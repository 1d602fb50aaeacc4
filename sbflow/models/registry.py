"""Models by name: build a network from a registered name and a JSON-like config.

A saved :class:`~sbflow.Bridge` records its network as ``{"name", "config", "state"}`` and
never as a pickle, so a file can only rebuild classes registered here. Register your own
class once (``register_model("my-net")(MyNet)`` or as a decorator) and build it with
:func:`build_model`; the built module remembers its name and config for saving.

Before anything is allocated, :func:`build_model` builds the network on PyTorch's ``meta``
device (shapes only, no memory) and refuses configs with more than :data:`MAX_PARAMETERS`
parameters: an edited file cannot make ``load`` allocate terabytes.

Example:
    >>> net = build_model("time-mlp", dim=2, hidden=8, depth=1)
    >>> describe_model(net)
    ('time-mlp', {'dim': 2, 'hidden': 8, 'depth': 1})
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = [
    "MAX_PARAMETERS",
    "build_model",
    "count_parameters",
    "describe_model",
    "model_names",
    "register_model",
]

#: Largest network :func:`build_model` builds (parameters); a guard against edited files.
MAX_PARAMETERS = 10**8

_MODELS: dict[str, type[nn.Module]] = {}
_CONFIG_ATTR = "_sbflow_model"


def register_model(
    name: str, *, replace: bool = False
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Register an ``nn.Module`` class under ``name`` (use as a decorator or call it).

    The class is built as ``cls(**config)``; the config must be JSON-like (numbers, strings,
    lists, dicts, booleans, ``None``).

    Raises:
        ValueError: If ``name`` is taken by another class and ``replace`` is false.

    Example:
        >>> @register_model("doc-net", replace=True)
        ... class DocNet(nn.Linear):
        ...     def __init__(self, dim):
        ...         super().__init__(dim, dim)
        ...     def forward(self, x, t):
        ...         return super().forward(x)
        >>> build_model("doc-net", dim=3)(torch.zeros(1, 3), 0.0).shape
        torch.Size([1, 3])
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"a model name must be a non-empty string; got {name!r}.")

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_model needs an nn.Module class; got {cls!r}.")
        old = _MODELS.get(name)
        if old is not None and old is not cls and not replace:
            raise ValueError(
                f"model name {name!r} is already registered for {old.__qualname__}; pick "
                f"another name or pass replace=True."
            )
        _MODELS[name] = cls
        return cls

    return add


def model_names() -> tuple[str, ...]:
    """Registered model names, sorted.

    Example:
        >>> {"time-mlp", "flow-score-mlp", "small-unet"} <= set(model_names())
        True
    """
    return tuple(sorted(_MODELS))


def _check_config(config: dict[str, Any]) -> None:
    try:
        json.dumps(config)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"model_config must be JSON-like (numbers, strings, lists, dicts); {err}."
        ) from err


def count_parameters(name: str, config: dict[str, Any]) -> int:
    """Parameters of ``name`` built with ``config``, counted without allocating memory.

    The class is built on PyTorch's ``meta`` device (shapes, no storage); a class that
    cannot be may define a static ``count_parameters(**config)`` instead.

    Example:
        >>> count_parameters("time-mlp", {"dim": 2, "hidden": 4, "depth": 1})
        26
    """
    cls = _lookup(name)
    own = getattr(cls, "count_parameters", None)
    if callable(own):  # classes that cannot be built on the meta device count themselves
        return int(own(**config))
    try:
        with torch.device("meta"):
            net = cls(**config)
    except (TypeError, ValueError, RuntimeError) as err:  # wrong names, types or sizes
        raise ValueError(
            f"model {name!r} does not accept the config {config}: {err}. Pass the arguments "
            f"its class takes (an edited file?)."
        ) from err
    return sum(p.numel() for p in net.parameters())


def _lookup(name: str) -> type[nn.Module]:
    if name not in _MODELS:
        raise ValueError(
            f"unknown model {name!r}; registered models: {', '.join(model_names())}. A custom "
            f"class must be registered with sbflow.models.register_model before loading."
        )
    return _MODELS[name]


def build_model(name: str, /, **config: Any) -> nn.Module:
    """Build the registered model ``name`` with ``config`` (after a size check).

    Raises:
        ValueError: Unknown name, a config the class rejects, or more than
            :data:`MAX_PARAMETERS` parameters.

    Example:
        >>> build_model("time-mlp", dim=2, hidden=30000, depth=20)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: model 'time-mlp' with config {...} would have 17100750002 parameters, ...
    """
    _check_config(config)
    size = count_parameters(name, config)
    if size > MAX_PARAMETERS:
        raise ValueError(
            f"model {name!r} with config {config} would have {size} parameters, over the limit "
            f"of {MAX_PARAMETERS}; check the config (an edited file?)."
        )
    net = _lookup(name)(**config)
    setattr(net, _CONFIG_ATTR, (name, dict(config)))
    return net


def describe_model(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(name, config)`` that rebuild ``model`` with :func:`build_model`.

    Raises:
        ValueError: If the model was not built by :func:`build_model` (then a file could not
            rebuild it).

    Example:
        >>> describe_model(build_model("small-unet", in_channels=1, base_channels=4))[0]
        'small-unet'
    """
    info = getattr(model, _CONFIG_ATTR, None)
    if info is None:
        raise ValueError(
            f"cannot record a {type(model).__qualname__} by name: register its class with "
            f"sbflow.models.register_model('name') and build it with "
            f"sbflow.models.build_model('name', **config), so a saved file can rebuild it."
        )
    return info[0], dict(info[1])
