"""The :class:`Bridge` type: a field, the maps to the user's units, and its simulators."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sbflow._checks import (
    as_samples,
    check_bool,
    check_generator,
    check_path,
    check_positive,
    check_positive_int,
)
from sbflow._inference import clip_to_range, inference_threads, map_chunks, to_caller
from sbflow._memory import require_memory
from sbflow.bridge.timemap import TimeMap, scalar_scale, to_internal
from sbflow.methods._training import Shaped
from sbflow.training.batches import Normalizer

__all__ = ["Bridge"]


def _zero_field(x: torch.Tensor, t: Any) -> torch.Tensor:
    """A zero score: the SDE drift is then the field's output as it is."""
    return torch.zeros_like(x)


def _as_data_range(
    value: Any, n_times: int, feature_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(low, high)`` as float tensors of shape ``(n_times, *feature_shape)``, or ``None``.

    Bounds of one sample's shape are taken as the range of every snapshot.
    """
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(
            f"data_range must be a pair (low, high) of per-feature bounds, or None; got "
            f"{type(value).__name__}."
        )
    full = (n_times, *feature_shape)
    bounds = []
    for name, bound in zip(("low", "high"), value):
        b = torch.as_tensor(bound).detach().to("cpu", torch.float32)
        if tuple(b.shape) == feature_shape:
            b = b.expand(full)
        if tuple(b.shape) != full:
            raise ValueError(
                f"data_range's {name} has shape {tuple(b.shape)}; pass bounds of one sample's "
                f"shape {feature_shape} or one per snapshot, of shape {full}."
            )
        if not bool(torch.isfinite(b).all()):
            raise ValueError(f"data_range's {name} has NaN or infinite entries.")
        bounds.append(b.contiguous())
    if bool((bounds[0] > bounds[1]).any()):
        raise ValueError("data_range has low > high for some features; pass low ≤ high.")
    return bounds[0], bounds[1]


class Bridge:
    """A transport between sample sets: a field, its units and how it simulates.

    Returned by :func:`sbflow.fit`, restored by :func:`sbflow.load`, or built directly around
    any field (see :mod:`sbflow.bridge.fields`): an ``nn.Module`` ``model(x, t)`` returning
    the velocity ``v`` or ``(v, s)`` with the score, in standardised units and time
    ``τ ∈ [0, 1]``. :meth:`from_gaussian` wraps the closed-form Gaussian bridge.

    Args:
        model: The field (put in evaluation mode, gradients off). To be saved it must come
            from :func:`sbflow.models.build_model` (a registered name and config).
        method: Name of the method that made it (a registered method or any label).
        feature_shape: Shape of one sample.
        times: Snapshot times in the user's units (default ``[0, 1]``).
        normalizer: Standardisation ``z = (x − shift)/scale`` (default: none).
        sigma: σ of the reference Brownian motion in data units per unit of time (0: ODE).
        simulation: ``"sde"`` or ``"ode"``, the default simulator.
        base: ``"normal"`` when the source is the standard normal (densities), else ``None``.
        options: The fit's options (JSON-like), kept for the record.
        history: ``(step, mean loss)`` rows of training.
        sigma_internal: σ in training units, only for files whose per-feature scales leave
            no single data-unit σ (loaded from the previous format).
        data_range: Per-feature ``(low, high)`` of the training data, of shape
            ``(len(times), *feature_shape)`` (one row per sample set) or ``feature_shape``
            (the same for all); what ``clip=True`` clips to. :func:`sbflow.fit` records it;
            ``None``: unknown (files of sbflow 0.1), and ``clip=True`` raises.

    Example:
        >>> from sbflow.gaussian import GaussianBridge
        >>> gb = GaussianBridge([0.0, 0.0], torch.eye(2), [3.0, 0.0], torch.eye(2), 0.5)
        >>> bridge = Bridge.from_gaussian(gb)
        >>> x1 = bridge.transport(torch.zeros(4, 2), sde=False)
        >>> [round(v, 3) for v in x1[0].tolist()]
        [3.0, 0.0]
        >>> bridge.data_range = ([-1.0, -1.0], [2.0, 2.0])  # fit records the data's own
        >>> bridge.transport(torch.zeros(4, 2), sde=False, clip=True)[0].tolist()
        [2.0, 0.0]
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        method: str,
        feature_shape: Sequence[int],
        times: Sequence[float] = (0.0, 1.0),
        normalizer: Normalizer | None = None,
        sigma: float = 0.0,
        simulation: str = "ode",
        base: str | None = None,
        options: dict[str, Any] | None = None,
        history: Sequence[tuple[int, float]] = (),
        sigma_internal: float | None = None,
        data_range: tuple[Any, Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch nn.Module; got {type(model).__name__}.")
        if simulation not in ("ode", "sde"):
            raise ValueError(f"simulation must be 'ode' or 'sde'; got {simulation!r}.")
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.method = str(method)
        self.feature_shape = tuple(int(d) for d in feature_shape)
        self.timemap = TimeMap(times)
        features = math.prod(self.feature_shape)
        self.normalizer = normalizer or Normalizer.identity(features)
        if self.normalizer.shift.shape[0] != features:
            raise ValueError(
                f"the normalizer has {self.normalizer.shift.shape[0]} features but "
                f"feature_shape {self.feature_shape} has {features}; pass a normalizer fitted "
                f"on samples of this shape."
            )
        if isinstance(sigma, (bool, str)) or not (
            isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0
        ):
            raise ValueError(f"sigma must be a finite number ≥ 0; got {sigma!r}.")
        self.simulation = simulation
        self.base = base
        self.options = dict(options or {})
        self.history = [(int(s), float(v)) for s, v in history]
        scale = scalar_scale(self.normalizer.scale)
        if sigma_internal is None:
            if scale is None and sigma > 0:
                raise ValueError(
                    "a bridge with σ > 0 needs one scale for all features: per-feature "
                    "standardisation would make the isotropic reference noise anisotropic."
                )
            sigma_internal = to_internal(sigma, scale=scale or 1.0, span=self.timemap.span)
        self.sigma = float(sigma)
        self._sigma_z = float(sigma_internal)
        if simulation == "sde" and not self._sigma_z > 0:
            raise ValueError("simulation='sde' needs sigma > 0.")
        self._net = Shaped(self.model, self.feature_shape)
        self.data_range = data_range

    @classmethod
    def from_gaussian(cls, bridge: Any) -> Bridge:
        """The closed-form :class:`~sbflow.gaussian.GaussianBridge` behind the Bridge API.

        Times are ``[0, 1]`` and the data units are the Gaussians' own.
        """
        from sbflow.bridge.fields import GaussianField

        return cls(
            GaussianField.from_bridge(bridge),
            method="gaussian",
            feature_shape=(bridge.dim,),
            sigma=bridge.sigma,
            simulation="sde",
        )

    @property
    def data_range(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-feature ``(low, high)`` of each training set, ``(len(times), *feature_shape)``.

        Set it to a pair of bounds of one sample's shape (used for every snapshot) or of
        that full shape; ``None`` removes it.
        """
        return self._data_range

    @data_range.setter
    def data_range(self, value: Any) -> None:
        self._data_range = _as_data_range(value, len(self.times), self.feature_shape)

    @property
    def times(self) -> list[float]:
        """Times of the sample sets in the user's units."""
        return self.timemap.times

    @property
    def needs_score(self) -> bool:
        """Whether the bridge simulates an SDE (its field has a score head)."""
        return self.simulation == "sde"

    def __repr__(self) -> str:
        return (
            f"Bridge(method={self.method!r}, features={self.feature_shape}, "
            f"times={self.times}, sigma={self.sigma:g}, simulation={self.simulation!r})"
        )

    @property
    def device(self) -> torch.device:
        """Device of the field's parameters (the CPU for a field without any).

        Example:
            >>> from sbflow.gaussian import GaussianBridge
            >>> gb = GaussianBridge([0.0], [[1.0]], [1.0], [[1.0]], 0.5)
            >>> Bridge.from_gaussian(gb).device
            device(type='cpu')
        """
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    # -- fields in training units -------------------------------------------------------------

    def _heads(self, z: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, Any]:
        out = self._net(z, tau)
        return (out[0], out[1] if len(out) > 1 else None) if isinstance(out, tuple) else (out, None)

    def _velocity(self, z: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        return self._heads(z, tau)[0]

    def _score(self, z: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        s = self._heads(z, tau)[1]
        if s is None:
            raise ValueError(f"the {self.method} bridge's field has no score head; use the ODE.")
        return s

    def _encode(self, x: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        xs = as_samples(x, name)
        if tuple(xs.shape[1:]) != self.feature_shape:
            raise ValueError(
                f"{name} has samples of shape {tuple(xs.shape[1:])}, but this bridge was fitted "
                f"on samples of shape {self.feature_shape}; pass {name} of shape "
                f"(n, {', '.join(map(str, self.feature_shape))})."
            )
        p = next(self.model.parameters(), None)
        dtype = p.dtype if p is not None else xs.dtype
        flat = xs.reshape(xs.shape[0], -1).to(device=self.device, dtype=dtype)
        return self.normalizer.encode(flat), xs

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.normalizer.decode(z).reshape(*z.shape[:-1], *self.feature_shape)

    @property
    def _drift_only(self) -> bool:
        """The field returns the forward SDE drift itself (``field_output = "forward-drift"``)."""
        return getattr(self.model, "field_output", "velocity") == "forward-drift"

    def _use_sde(self, sde: bool | None) -> bool:
        if sde is None:
            return self.simulation == "sde"
        check_bool(sde, "sde")
        if not sde and self._drift_only:
            raise ValueError(
                f"the {self.method} bridge is a forward SDE with a closed-form drift: it has no "
                f"probability-flow ODE; use sde=True (the default) or sample_conditional."
            )
        if sde and self.simulation != "sde":
            raise ValueError(
                f"the {self.method} bridge learns an ODE only; sde=True needs a bridge with a "
                f"score head and σ > 0 (e.g. method='sb-cfm')."
            )
        return bool(sde)

    def _simulate(self, z: torch.Tensor, taus: list[float], *, sde: bool, **kw: Any) -> Any:
        """Simulate from ``taus[0]`` through every τ (monotone; decreasing runs backward)."""
        from sbflow.simulation import integrate_ode, integrate_sde

        backward = taus[-1] < taus[0]
        if self._drift_only and (backward or not sde):
            raise ValueError(
                f"the {self.method} bridge's field is its forward SDE drift only: it cannot "
                f"run backward in time or as an ODE (that needs the marginals' score); "
                f"transport forward with sde=True."
            )
        grid = torch.tensor(sorted(taus), dtype=z.dtype)
        with torch.no_grad():
            if sde:
                return integrate_sde(
                    self._velocity,
                    _zero_field if self._drift_only else self._score,
                    z,
                    g=self._sigma_z,
                    times=grid,
                    steps=100 if kw.get("steps") is None else kw["steps"],
                    direction="backward" if backward else "forward",
                    method=kw.get("method") or "euler",
                    generator=kw.get("generator"),
                )
            steps = kw.get("steps")
            return integrate_ode(
                self._velocity,
                z,
                grid,
                method=kw.get("method") or ("dopri5" if steps is None else "euler"),
                atol=kw.get("atol", 1e-5),
                rtol=kw.get("rtol", 1e-5),
                steps=steps,
                reverse=backward,
            )

    # -- public simulation ------------------------------------------------------------------

    def transport(
        self,
        x: Any,
        *,
        t_start: float | None = None,
        t_end: float | None = None,
        reverse: bool = False,
        sde: bool | None = None,
        steps: int | None = None,
        method: str | None = None,
        generator: torch.Generator | None = None,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        clip: bool = False,
        progress: bool | None = None,
    ) -> Any:
        """Push samples from ``t_start`` to ``t_end`` (backward in time when ``t_start > t_end``).

        Args:
            x: Samples ``(n, *dims)`` in the data's units at ``t_start``.
            t_start: Start time in the fit's units (default: the first snapshot, or the last
                with ``reverse=True``).
            t_end: End time (default: the last snapshot, or the first with ``reverse``).
            reverse: Transport backward, target side → source side; only changes the
                defaults of ``t_start``/``t_end`` (``t_start > t_end`` alone also runs
                backward). Increasing times with ``reverse=True`` raise.
            sde: Simulate the SDE ``dx = [v + (σ²/2) s] dt + σ dW`` (its time reversal
                backward) instead of the ODE. Default: the bridge's ``simulation``.
            steps: Fixed number of steps (ODE: Euler unless ``method`` says otherwise; SDE:
                default 100). ``None`` uses the adaptive ``dopri5`` ODE solver.
            method: Solver name (torchdiffeq for the ODE, torchsde for the SDE).
            generator: Randomness of the SDE's Brownian motion.
            atol: Absolute tolerance of the adaptive ODE solver.
            rtol: Relative tolerance of the adaptive ODE solver.
            clip: Clip the result, feature by feature, to the range observed in the
                training data on the side it lands on (:attr:`data_range`): at a snapshot
                time that set's range, between two snapshots the union of theirs. Raises
                for a bridge with no recorded range.
            progress: Progress bar: ``None`` (auto) shows one on an interactive terminal
                when the work is long, ``True`` always, ``False`` never.

        Returns:
            Transported samples, with the input's shape; a tensor with the input's dtype and
            device for tensor input, a NumPy array otherwise.

        Example:
            >>> from sbflow.gaussian import GaussianBridge
            >>> gb = GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 0.5)
            >>> bridge = Bridge.from_gaussian(gb)
            >>> back = bridge.transport(torch.full((1, 1), 2.0), t_start=1.0, t_end=0.0, sde=False)
            >>> round(back.item(), 3)
            0.0
        """
        check_bool(reverse, "reverse")
        traj = self._run(
            x, [t_start, t_end], ("t_start", "t_end"), reverse=reverse, sde=sde, steps=steps,
            method=method, generator=generator, atol=atol, rtol=rtol, clip=clip,
            progress=progress,
        )  # fmt: skip
        return traj[-1]

    def trajectory(
        self,
        x: Any,
        times: Sequence[float | None] | torch.Tensor | None = None,
        *,
        reverse: bool = False,
        sde: bool | None = None,
        steps: int | None = None,
        method: str | None = None,
        generator: torch.Generator | None = None,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        clip: bool = False,
        progress: bool | None = None,
    ) -> Any:
        """States of the transported samples at several times, in integration order.

        Args:
            x: Samples at the first of ``times``.
            times: Times in the fit's units, strictly increasing (forward) or strictly
                decreasing (backward); anything else raises. Default: 101 equally spaced
                times over the fitted range (reversed with ``reverse=True``). A ``None``
                first / last entry is the range's start / end.
            reverse: Default to the backward direction (see :meth:`transport`).
            sde: See :meth:`transport`.
            steps: See :meth:`transport`.
            method: See :meth:`transport`.
            generator: See :meth:`transport`.
            atol: See :meth:`transport`.
            rtol: See :meth:`transport`.
            clip: Clip every state to the training data's range at its time (see
                :meth:`transport`).
            progress: See :meth:`transport`.

        Returns:
            ``(len(times), n, *dims)``: entry ``k`` is the state at ``times[k]``.

        Example:
            >>> from sbflow.gaussian import GaussianBridge
            >>> gb = GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 0.5)
            >>> Bridge.from_gaussian(gb).trajectory(torch.zeros(3, 1), [0.0, 1.0, 0.5])
            Traceback (most recent call last):
            ...
            ValueError: times must be strictly increasing (forward) or strictly decreasing ...
        """
        check_bool(reverse, "reverse")
        if times is not None:
            if isinstance(times, (str, bytes)) or not isinstance(
                times, (Sequence, torch.Tensor, np.ndarray)
            ):
                raise TypeError(
                    f"times must be a list of at least two times (e.g. [0.0, 0.5, 1.0]) or None; "
                    f"got {times!r}."
                )
            times = times.tolist() if isinstance(times, (torch.Tensor, np.ndarray)) else list(times)
        return self._run(
            x, times, None, reverse=reverse, sde=sde, steps=steps, method=method,
            generator=generator, atol=atol, rtol=rtol, clip=clip, progress=progress,
        )  # fmt: skip

    def _run(
        self,
        x: Any,
        times: list[Any] | None,
        names: tuple[str, ...] | None,
        *,
        reverse: bool,
        sde: bool | None,
        steps: int | None,
        method: str | None,
        generator: torch.Generator | None,
        atol: float,
        rtol: float,
        clip: bool = False,
        progress: bool | None = None,
    ) -> Any:
        """:meth:`trajectory` after its own argument checks; checks the simulator options."""
        use_sde = self._use_sde(sde)
        self._check_clip(clip)
        opts = self._sim_options(steps, method, generator, atol, rtol)
        if times is None:
            taus = torch.linspace(0.0, 1.0, 101).tolist()
            taus = taus[::-1] if reverse else taus
        else:
            taus = self.timemap.resolve(times, reverse=reverse, names=names)
        z, _ = self._encode(x, "x")
        require_memory(
            len(taus) * z.numel() * z.element_size(),
            what=f"the trajectory of {z.shape[0]} samples at {len(taus)} times",
            hint="Pass fewer times, or transport the samples in smaller groups.",
            device=z.device,
        )

        def run(chunk: torch.Tensor) -> torch.Tensor:
            return self._simulate(chunk, taus, sde=use_sde, **opts).trajectory

        with inference_threads(1, self.device):
            traj = map_chunks(run, z, out_dim=1, desc="transport", progress=progress)
        if not bool(torch.isfinite(traj).all()):
            raise FloatingPointError(
                "the simulation left NaN or infinite values: the field diverges along these "
                "paths (an under-trained model, or inputs far outside the training data). "
                "Pass more steps= (or an adaptive ODE), or check the inputs and the fit."
            )
        out = self._decode(traj)
        return to_caller(self._clip(out, taus) if clip else out, x)

    # -- clipping to the data's range ---------------------------------------------------------

    def _check_clip(self, clip: Any) -> None:
        """Refuse ``clip=True`` up front when the bridge has no recorded range."""
        if check_bool(clip, "clip") and self.data_range is None:
            raise ValueError(
                "clip=True needs the training data's observed range, but this bridge has no "
                "recorded range (files saved by sbflow 0.1 and bridges built without "
                "data_range have none). Refit it with sbflow.fit, set bridge.data_range = "
                "(low, high), or pass clip=False."
            )

    def _range_at(self, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Range at training time ``tau``: a snapshot's own, else the union of the two around."""
        low, high = self.data_range  # type: ignore[misc]  # checked by _check_clip
        taus = [self.timemap.tau(t) for t in self.times]
        for k, snap in enumerate(taus):
            if abs(tau - snap) <= 1e-6:
                return low[k], high[k]
        k = max(j for j, snap in enumerate(taus[:-1]) if snap <= tau)
        return torch.minimum(low[k], low[k + 1]), torch.maximum(high[k], high[k + 1])

    def _clip(self, traj: torch.Tensor, taus: list[float]) -> torch.Tensor:
        """Clip each state ``traj[k]`` (at ``taus[k]``) to the data's range at that time."""
        return torch.stack(
            [clip_to_range(state, *self._range_at(tau)) for state, tau in zip(traj, taus)]
        )

    def _sim_options(
        self,
        steps: Any,
        method: Any,
        generator: Any,
        atol: Any,
        rtol: Any,
    ) -> dict[str, Any]:
        """Checked options of :meth:`_simulate` (``TypeError``/``ValueError`` naming them)."""
        if steps is not None:
            steps = check_positive_int(steps, "steps")
        if method is not None and not isinstance(method, str):
            raise TypeError(
                f"method must be a solver name such as 'dopri5' or 'euler' (or None); got "
                f"{method!r}."
            )
        tol_hint = "Typical tolerances are 1e-3 … 1e-7."
        return dict(
            steps=steps,
            method=method,
            generator=check_generator(generator),
            atol=check_positive(atol, "atol", tol_hint),
            rtol=check_positive(rtol, "rtol", tol_hint),
        )

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        sde: bool | None = None,
        clip: bool = False,
        progress: bool | None = None,
    ) -> Any:
        """Draw ``n`` target-side samples by transporting standard-normal source samples.

        Only for bridges whose source is the standard normal. ``clip`` and ``progress`` are
        those of :meth:`transport`.

        Example:
            >>> from sbflow.gaussian import GaussianBridge
            >>> bridge = Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 1.0))
            >>> bridge.sample(3)
            Traceback (most recent call last):
            ...
            ValueError: sample() needs a standard-normal source; use transport(x0).
        """
        if self.base != "normal":
            raise ValueError("sample() needs a standard-normal source; use transport(x0).")
        n = check_positive_int(n, "n")
        check_generator(generator)
        self._use_sde(sde)
        self._check_clip(clip)
        require_memory(
            2 * n * math.prod(self.feature_shape) * torch.get_default_dtype().itemsize,
            what=f"sample({n})",
            hint="Draw fewer samples per call (e.g. in a loop of chunks).",
        )
        x0 = torch.randn(n, *self.feature_shape, generator=generator)
        return self.transport(x0, sde=sde, generator=generator, clip=clip, progress=progress)

    def sample_conditional(
        self,
        x: Any,
        n: int,
        *,
        generator: torch.Generator | None = None,
        steps: int = 100,
        clip: bool = False,
        progress: bool | None = None,
    ) -> Any:
        """``n`` draws of the learned plan ``π(·|x)`` per row of ``x``: ``(len(x), n, *dims)``.

        Exact when the field offers it (``light-sb``), else by simulating the SDE from ``x``
        repeated ``n`` times; an ODE-only bridge raises. See
        :func:`sbflow.bridge.conditional.sample_conditional`.

        Example:
            >>> from sbflow.gaussian import GaussianBridge
            >>> bridge = Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 1.0))
            >>> bridge.sample_conditional(torch.zeros(3, 1), 4, steps=10).shape
            torch.Size([3, 4, 1])
        """
        from sbflow.bridge.conditional import sample_conditional

        return sample_conditional(
            self, x, n, generator=generator, steps=steps, clip=clip, progress=progress
        )

    def log_prob(self, x: Any, **options: Any) -> Any:
        """Log density of ``x`` under the target side (standard-normal sources only).

        See :func:`sbflow.bridge.evaluation.log_prob` for the arguments.
        """
        from sbflow.bridge.evaluation import log_prob

        return log_prob(self, x, **options)

    def evaluate(self, x0: Any, x1: Any, **options: Any) -> dict[str, float]:
        """Compare transported ``x0`` with held-out ``x1`` (W2, W1, energy, MMD, NFE, path energy).

        See :func:`sbflow.bridge.evaluation.evaluate` for the arguments and metrics.
        """
        from sbflow.bridge.evaluation import evaluate

        return evaluate(self, x0, x1, **options)

    def plot(self, x0: Any, x1: Any | None = None, **options: Any) -> Any:
        """Plot trajectories: :func:`sbflow.plotting.plot_bridge` on this bridge."""
        from sbflow.plotting import plot_bridge

        return plot_bridge(self, x0, x1, **options)

    # -- persistence ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything :func:`sbflow.load` needs (see :mod:`sbflow.bridge.persistence`)."""
        from sbflow.bridge.persistence import bridge_state

        return bridge_state(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], *, device: Any = "cpu") -> Bridge:
        """Rebuild a bridge from :meth:`state_dict` (also the previous file format)."""
        from sbflow.bridge.persistence import bridge_from_state

        return bridge_from_state(state, device=device)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to one file (atomic write); restore with :func:`sbflow.load`."""
        from sbflow.training.checkpoint import write_state

        return write_state(check_path(path, "path"), self.state_dict())

    @property
    def sigma_internal(self) -> float:
        """σ in training units (standardised data, per unit τ); what the SDE uses."""
        return self._sigma_z
