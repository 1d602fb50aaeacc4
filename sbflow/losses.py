"""Regression losses of flow matching and score matching on a :class:`PathSample`.

Every loss takes a user model called ``model(x, t)`` with ``x`` of shape ``(n, *dims)`` and
``t`` of shape ``(n,)``, and a :class:`~sbflow.paths.PathSample`. Losses are means over the
batch and over the feature dimensions.

Score convention (project-wide): a score model predicts the raw score ``∇_x log p_t(x)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sbflow.paths import PathSample

__all__ = ["bridge_loss", "flow_matching_loss", "score_matching_loss"]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_WEIGHTINGS = ("lambda", "none")


def _check_output(out: torch.Tensor, target: torch.Tensor, what: str) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the {what} model must return a tensor; got {type(out).__name__}.")
    if out.shape != target.shape:
        raise ValueError(
            f"the {what} model returned shape {tuple(out.shape)} but the targets have shape "
            f"{tuple(target.shape)}; the model must map (n, *dims) to (n, *dims)."
        )


def _expand(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return c.reshape(-1, *([1] * (x.dim() - 1)))


def _velocity_error(v: torch.Tensor, sample: PathSample) -> torch.Tensor:
    _check_output(v, sample.ut, "velocity")
    return (v - sample.ut).pow(2).mean()


def _score_error(s: torch.Tensor, sample: PathSample, weighting: str) -> torch.Tensor:
    if sample.noise is None or sample.score is None:
        raise ValueError(
            "this PathSample has no noise, so there is no score target; use a noisy path "
            "(e.g. BrownianBridgePath or LinearPath(sigma > 0))."
        )
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"weighting must be one of {_WEIGHTINGS}; got {weighting!r}.")
    _check_output(s, sample.score, "score")
    if weighting == "none":
        return (s - sample.score).pow(2).mean()
    lam = _expand(sample.std, s)
    # λ(t) s + ε = σ_t (s − score target); rows with σ_t = 0 have no score and are skipped.
    residual = torch.where(lam > 0, lam * s + sample.noise, torch.zeros_like(s))
    return residual.pow(2).mean()


def flow_matching_loss(velocity_model: Model, sample: PathSample) -> torch.Tensor:
    """Mean squared error between ``v_θ(x_t, t)`` and the velocity target ``u_t``.

    ``L = mean_{k, d} (v_θ(x_t, t)_{k,d} − u_{t,k,d})²``.

    Args:
        velocity_model: ``model(x, t) -> v`` with ``v`` of the shape of ``x``.
        sample: A :class:`~sbflow.paths.PathSample`.

    Returns:
        A scalar tensor.

    Example:
        >>> from sbflow.paths import LinearPath
        >>> s = LinearPath().sample(torch.zeros(3, 2), torch.ones(3, 2), t=0.5)  # u_t = 1
        >>> flow_matching_loss(lambda x, t: torch.ones_like(x), s).item()
        0.0
        >>> flow_matching_loss(lambda x, t: torch.full_like(x, 3.0), s).item()  # (3 − 1)²
        4.0
    """
    return _velocity_error(velocity_model(sample.xt, sample.t), sample)


def score_matching_loss(
    score_model: Model, sample: PathSample, weighting: str = "lambda"
) -> torch.Tensor:
    """Denoising score matching against the conditional score target.

    With ``weighting="lambda"`` (default), ``λ(t) = σ_t`` and
    ``L = mean_{k, d} (λ(t_k) s_θ(x_t, t)_{k,d} + ε_{k,d})²`` — equal to
    ``mean σ_t² (s_θ − ∇ log p_t(x_t | x0, x1))²`` and bounded as ``σ_t → 0``. Rows with
    ``σ_t = 0`` contribute zero. ``weighting="none"`` is the unweighted
    ``mean (s_θ − score target)²``.

    Args:
        score_model: ``model(x, t) -> s`` predicting the raw score ``∇_x log p_t(x)``.
        sample: A :class:`~sbflow.paths.PathSample` from a noisy path.
        weighting: ``"lambda"`` or ``"none"``.

    Raises:
        ValueError: If the sample has no noise (no score target).

    Example:
        >>> from sbflow.paths import BrownianBridgePath
        >>> s = BrownianBridgePath(1.0).sample(torch.zeros(3, 2), torch.ones(3, 2), t=0.5)
        >>> score_matching_loss(lambda x, t: s.score, s).item()
        0.0
    """
    return _score_error(score_model(sample.xt, sample.t), sample, weighting)


def bridge_loss(
    model: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    sample: PathSample,
    *,
    score_weight: float = 1.0,
    weighting: str = "lambda",
) -> torch.Tensor:
    """[SF]2M loss for a two-head model returning ``(v, s)``: flow loss + score loss.

    ``L = flow_matching_loss + score_weight · score_matching_loss`` evaluated with one model
    call (see :func:`flow_matching_loss` and :func:`score_matching_loss`).

    Args:
        model: ``model(x, t) -> (v, s)``, e.g. :class:`sbflow.models.FlowScoreMLP`.
        sample: A :class:`~sbflow.paths.PathSample` from a noisy path.
        score_weight: Weight of the score term.
        weighting: Score weighting, ``"lambda"`` or ``"none"``.

    Example:
        >>> from sbflow.paths import BrownianBridgePath
        >>> s = BrownianBridgePath(1.0).sample(torch.zeros(3, 2), torch.ones(3, 2), t=0.5)
        >>> bridge_loss(lambda x, t: (s.ut, s.score), s).item()
        0.0
    """
    out = model(sample.xt, sample.t)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError("bridge_loss needs a two-head model returning (velocity, score).")
    v, s = out
    return _velocity_error(v, sample) + float(score_weight) * _score_error(s, sample, weighting)
