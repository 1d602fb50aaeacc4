r"""A light Schrödinger bridge: the Schrödinger potential as a Gaussian mixture (LightSB).

Reference process :math:`dX = \sigma\, dW` on :math:`[0, 1]` in the data's units,
:math:`\varepsilon = \sigma^2`; the static problem is entropic OT with cost
:math:`\tfrac12\|x - y\|^2` and regulariser :math:`\varepsilon\,\mathrm{KL}` (``reg = 2ε`` on
:math:`\|x - y\|^2`). The optimal plan has the form :math:`\pi(y|x) = \exp(\langle x, y\rangle
/\varepsilon)\, v(y) / c(x)`. With the potential (Korotin, Gushchin and Burnaev, ICLR 2024)

.. math:: v_\theta(y) = \sum_k \alpha_k\, \mathcal N(y \mid r_k, \varepsilon S_k),
          \qquad S_k \text{ diagonal},

completing the square gives, in closed form,

* :math:`c_\theta(x) = \sum_k \alpha_k \exp\big(r_k^\top x/\varepsilon + x^\top S_k x /
  (2\varepsilon)\big)`;
* :math:`\pi_\theta(y|x) = \sum_k \gamma_k(x)\, \mathcal N(y \mid r_k + S_k x, \varepsilon
  S_k)` with :math:`\gamma_k(x) \propto \alpha_k \exp(r_k^\top x/\varepsilon + x^\top S_k x /
  (2\varepsilon))`: exact sampling (Gumbel-max over :math:`\gamma`, then the Gaussian) and
  exact conditional moments;
* training on unpaired samples minimises :math:`E_{x\sim p_0}\log c_\theta(x) -
  E_{y\sim p_1}\log v_\theta(y)`, which is :math:`\mathrm{KL}(\pi^*\|\pi_\theta)` up to a
  constant (:func:`fit_light_sb`); or, on given pairs, bridge matching of the closed-form
  drift below (:func:`fit_light_sb_matching`, LightSB-M style).

**Drift of the bridge** (derived here, checked in the tests by autograd and by simulation).
The bridge is the reference :math:`h`-transformed by :math:`h(x, t) = \int \mathcal N(y \mid
x, \varepsilon(1-t) I)\, e^{\|y\|^2/(2\varepsilon)} v_\theta(y)\, dy`; with
:math:`\tau = 1 - t`, per coordinate of each component,

.. math:: \varepsilon\nabla_x \log h = \sum_k w_k(x, t)\,
          \frac{r_k + (S_k - I)x}{\tau + t S_k},\qquad
          \log w_k = \log\alpha_k + \sum_d \Big[-\tfrac12\log(\tau + t s_{kd})
          + \frac{(s_{kd} - 1)x_d^2 + 2 r_{kd} x_d - t r_{kd}^2}{2\varepsilon(\tau + t s_{kd})}
          \Big]

(softmax-normalised :math:`w`). At :math:`t = 0` this is :math:`E_\theta[y|x] - x`, and the
whole expression stays finite up to :math:`t = 1`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sbflow._checks import as_samples, check_int, check_positive, check_same_feature_shape
from sbflow._random import rand, randn
from sbflow.groundtruth._mixture import drift_times, mixture_moments, sample_mixture

__all__ = ["LightSB", "LightSBFit", "fit_light_sb", "fit_light_sb_matching"]

_LOG_2PI = math.log(2.0 * math.pi)
# Bridge matching samples t in [0, 0.99]: the target's variance εt/(1 − t) explodes at 1.
_T_MAX = 0.99


class LightSB(nn.Module):
    r"""Gaussian-mixture Schrödinger potential with a closed-form plan and bridge.

    Parameters live in float64 (the log-sum-exps at small ε need it); every method takes
    inputs of any floating dtype and answers in that dtype. Fit with :func:`fit_light_sb`.

    Args:
        dim: Dimension :math:`D`.
        n_components: Number :math:`K` of mixture components.
        eps: :math:`\varepsilon = \sigma^2` in data units.
        device: Device of the parameters.

    The component means of :math:`\pi_\theta(\cdot|x)` are stored as their values
    ``loc`` at a reference input ``center`` (the mean of the source set after
    :func:`fit_light_sb`): :math:`r_k = \mathrm{loc}_k - S_k\,\mathrm{center}`. This is
    the same model; it only decouples :math:`r_k` from :math:`S_k` for the optimiser when the
    source is far from the origin.

    Attributes:
        log_alpha: Unnormalised log-weights ``(K,)``.
        loc: Component means of :math:`\pi_\theta(\cdot|\mathrm{center})` ``(K, D)``.
        log_s: :math:`\log` of the diagonals of :math:`S_k` ``(K, D)``.
        center: Reference input ``(D,)`` (a buffer, zero by default).

    Example:
        >>> model = LightSB(dim=2, n_components=3, eps=0.5)
        >>> x = torch.zeros(4, 2)
        >>> model.sample_conditional(x, 10).shape
        torch.Size([4, 10, 2])
        >>> model.drift(x, torch.full((4,), 0.5)).shape
        torch.Size([4, 2])
    """

    def __init__(self, dim: int, n_components: int, eps: float, *, device: Any = None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", 1)
        self.n_components = check_int(n_components, "n_components", 1)
        self.eps = check_positive(eps, "eps", "ε = σ² is the reference's variance rate.")
        kw = {"dtype": torch.float64, "device": device}
        self.log_alpha = nn.Parameter(torch.zeros(n_components, **kw))
        self.loc = nn.Parameter(torch.zeros(n_components, dim, **kw))
        self.log_s = nn.Parameter(torch.zeros(n_components, dim, **kw))
        self.register_buffer("center", torch.zeros(dim, **kw))

    @property
    def r(self) -> torch.Tensor:
        r""":math:`r_k = \mathrm{loc}_k - S_k\,\mathrm{center}` ``(K, D)`` (differentiable)."""
        return self.loc - self.log_s.exp() * self.center

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_components={self.n_components}, eps={self.eps:g}"

    # ------------------------------------------------------------------ potentials
    def log_potential(self, y: Any) -> torch.Tensor:
        r""":math:`\log v_\theta(y) = \log\sum_k \alpha_k \mathcal N(y \mid r_k, \varepsilon
        S_k)` (weights normalised), shape ``(n,)``, float64 and differentiable.

        Example:
            >>> LightSB(2, 1, 1.0).log_potential(torch.zeros(1, 2)).item() == -math.log(2 * math.pi)
            True
        """
        return self._log_potential64(self._inputs(y, "y").to(torch.float64))

    def _log_potential64(self, y64: torch.Tensor) -> torch.Tensor:
        prec = torch.exp(-self.log_s) / self.eps  # (K, D)
        r = self.r
        # ‖y − r_k‖² weighted by the precision, expanded into matrix products (no (n, K, D)).
        maha = y64.pow(2) @ prec.T - 2.0 * y64 @ (r * prec).T + (r.pow(2) * prec).sum(-1)
        log_det = self.log_s.sum(-1) + self.dim * math.log(self.eps)
        log_normal = -0.5 * (maha + log_det + self.dim * _LOG_2PI)
        return torch.logsumexp(torch.log_softmax(self.log_alpha, 0) + log_normal, dim=-1)

    def log_normaliser(self, x: Any) -> torch.Tensor:
        r""":math:`\log c_\theta(x) = \log\sum_k \alpha_k \exp(r_k^\top x/\varepsilon +
        x^\top S_k x/(2\varepsilon))`, shape ``(n,)``, float64 and differentiable.

        Example:
            >>> LightSB(2, 3, 1.0).log_normaliser(torch.zeros(1, 2)).abs().item() < 1e-12
            True
        """
        x64 = self._inputs(x, "x").to(torch.float64)
        return torch.logsumexp(self._logits(x64), dim=-1)

    def _loss64(self, x64: torch.Tensor, y64: torch.Tensor) -> torch.Tensor:
        log_c = torch.logsumexp(self._logits(x64), dim=-1)
        return log_c.mean() - self._log_potential64(y64).mean()

    def loss(self, x0: Any, x1: Any) -> torch.Tensor:
        r"""Training objective :math:`\operatorname{mean}\log c_\theta(x_0) -
        \operatorname{mean}\log v_\theta(x_1)` on unpaired batches (a float64 scalar).

        Example:
            >>> model = LightSB(2, 2, 1.0)
            >>> model.loss(torch.randn(8, 2), torch.randn(8, 2)).dim()
            0
        """
        x64 = self._inputs(x0, "x0").to(torch.float64)
        return self._loss64(x64, self._inputs(x1, "x1").to(torch.float64))

    # ------------------------------------------------------------------ the plan
    def sample_conditional(
        self, x: Any, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Draw ``n`` exact samples of :math:`\pi_\theta(\cdot|x)` for every row of ``x``.

        Args:
            x: Inputs ``(m, D)``.
            n: Samples per input.
            generator: Randomness.

        Returns:
            ``(m, n, D)`` in the dtype and on the device of ``x``.

        Example:
            >>> LightSB(3, 2, 1.0).sample_conditional(torch.zeros(2, 3), 5).shape
            torch.Size([2, 5, 3])
        """
        n = check_int(n, "n", 1)
        x_t = self._inputs(x, "x")
        with torch.no_grad():
            logits, means, variances = self._plan(x_t.to(torch.float64))
            return sample_mixture(logits, means, variances, n, generator, x_t.dtype)

    def transport(self, x: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""One draw of :math:`\pi_\theta(\cdot|x)` per row: ``(m, D)`` like ``x``.

        Example:
            >>> LightSB(2, 2, 1.0).transport(torch.zeros(5, 2)).shape
            torch.Size([5, 2])
        """
        return self.sample_conditional(x, 1, generator)[:, 0]

    def conditional_moments(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact mean ``(m, D)`` and covariance ``(m, D, D)`` of :math:`\pi_\theta(\cdot|x)`.

        Example:
            >>> model = LightSB(2, 1, 0.5)  # one component, S = I: y | x ~ N(x, 0.5 I)
            >>> mean, cov = model.conditional_moments(torch.ones(1, 2))
            >>> mean.tolist(), cov[0].diagonal().tolist()
            ([[1.0, 1.0]], [0.5, 0.5])
        """
        x_t = self._inputs(x, "x")
        with torch.no_grad():
            mean, cov = mixture_moments(*self._plan(x_t.to(torch.float64)))
        return mean.to(x_t.dtype), cov.to(x_t.dtype)

    def drift(self, x: Any, t: Any) -> torch.Tensor:
        r"""Closed-form drift of the bridge :math:`dX = f(X, t)\,dt + \sqrt\varepsilon\, dW`.

        See the module docstring for the formula. Simulating this SDE from ``x`` at
        :math:`t = 0` to :math:`t = 1` draws from :math:`\pi_\theta(\cdot|x)`.

        Args:
            x: States ``(n, D)``.
            t: A time in ``[0, 1]`` or ``n`` times ``(n,)``.

        Returns:
            ``(n, D)`` in the dtype of ``x`` (differentiable in the parameters).

        Example:
            >>> model = LightSB(2, 1, 1.0)  # S = I, r = 0: π(·|x) = N(x, I), no drift
            >>> model.drift(torch.ones(3, 2), 0.3).abs().max().item()
            0.0
        """
        x_t = self._inputs(x, "x")
        x64 = x_t.to(torch.float64)
        return self._drift64(x64, drift_times(t, x64)).to(x_t.dtype)

    def _drift64(self, x64: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        t3 = tt.reshape(-1, 1, 1)  # (n or 1, 1, 1)
        s = self.log_s.exp()  # (K, D)
        denom = (1.0 - t3) + t3 * s  # (n, K, D)
        xk = x64.unsqueeze(1)  # (n, 1, D)
        r = self.r
        quad = ((s - 1.0) * xk.pow(2) + 2.0 * r * xk - t3 * r.pow(2)) / denom
        logits = torch.log_softmax(self.log_alpha, 0) + (
            -0.5 * denom.log() + quad / (2.0 * self.eps)
        ).sum(-1)
        per_comp = (r + (s - 1.0) * xk) / denom  # (n, K, D)
        w = torch.softmax(logits, dim=-1)
        return torch.einsum("nk,nkd->nd", w, per_comp)

    # ------------------------------------------------------------------ internals
    def _inputs(self, x: Any, name: str) -> torch.Tensor:
        x_t = as_samples(x, name)
        if x_t.dim() != 2 or x_t.shape[1] != self.dim:
            raise ValueError(
                f"{name} must have shape (n, {self.dim}) for this {self.dim}-D model; "
                f"got {tuple(x_t.shape)}."
            )
        return x_t.to(self.loc.device)

    def _logits(self, x64: torch.Tensor) -> torch.Tensor:
        s = self.log_s.exp()
        lin = x64 @ self.r.T  # (n, K)
        quad = x64.pow(2) @ s.T
        return torch.log_softmax(self.log_alpha, 0) + (lin + 0.5 * quad) / self.eps

    def _plan(self, x64: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.log_s.exp()
        means = self.loc + s * (x64 - self.center).unsqueeze(1)  # (m, K, D)
        return self._logits(x64), means, self.eps * s


def _spread_init(
    y: torch.Tensor, k: int, generator: torch.Generator | None, pool: int = 10_000
) -> torch.Tensor:
    """k-means++ seeding: ``k`` rows of ``y`` (float64), spread over its clusters."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    idx = torch.randperm(y.shape[0], generator=generator, device=gen_device)[:pool]
    cand = y[idx.to(y.device)].to(torch.float64)
    first = int(torch.randint(0, cand.shape[0], (1,), generator=generator, device=gen_device))
    chosen = [first]
    dist = (cand - cand[first]).pow(2).sum(-1)
    for _ in range(k - 1):
        probs = dist.clamp_min(0).to(gen_device)
        nxt = (
            int(torch.multinomial(probs, 1, generator=generator))
            if float(probs.sum()) > 0
            else int(torch.randint(0, cand.shape[0], (1,), generator=generator, device=gen_device))
        )
        chosen.append(nxt)
        dist = torch.minimum(dist, (cand - cand[nxt]).pow(2).sum(-1))
    return cand[chosen]


@dataclass
class LightSBFit:
    """Result of :func:`fit_light_sb`.

    Attributes:
        model: The fitted :class:`LightSB`.
        losses: Training loss per step ``(steps,)`` (float64, CPU).
        seconds: Wall-clock time of the fit.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> x0, x1 = torch.randn(64, 2, generator=gen), torch.randn(64, 2, generator=gen) + 2
        >>> fit = fit_light_sb(x0, x1, eps=1.0, n_components=2, steps=5, generator=gen)
        >>> fit.losses.shape
        torch.Size([5])
    """

    model: LightSB
    losses: torch.Tensor
    seconds: float


def fit_light_sb(
    x0: Any,
    x1: Any,
    *,
    eps: float,
    n_components: int = 50,
    steps: int = 3000,
    lr: float = 3e-2,
    batch_size: int = 512,
    init_scale: float = 0.1,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> LightSBFit:
    r"""Fit a :class:`LightSB` between two unpaired sample sets.

    Adam on :math:`E_{x_0}\log c_\theta - E_{x_1}\log v_\theta` with fresh random batches of
    both sets each step and a cosine learning-rate decay to zero. The component means of
    :math:`\pi_\theta(\cdot|\bar x_0)` (``loc``) start at target samples picked by
    k-means++ seeding (each next one drawn with probability proportional to its squared
    distance to those already picked), so that small, far-away clusters of the target get a
    component. :math:`S_k` start at ``init_scale``·I, the weights uniform.

    The defaults reach the benchmark's floor + 0.1 (cBW2-UVP) at D = 2 … 128 given enough
    data: with 50 000 samples per side the fit over-fits at D = 128 (see the docs page
    *Ground truth*); 200 000 suffice.

    Args:
        x0: Source samples ``(n, D)``.
        x1: Target samples ``(m, D)``.
        eps: :math:`\varepsilon = \sigma^2` in the data's units (``reg = 2ε`` on
            :math:`\|x - y\|^2`).
        n_components: Mixture components :math:`K`.
        steps: Adam steps.
        lr: Peak learning rate (of the log-weights and log-variances; the locations move
            at ``lr`` times the target's scale).
        batch_size: Samples of each set per step.
        init_scale: Initial diagonal of :math:`S_k`.
        generator: Randomness of the initialisation and of the batches.
        progress: Show a tqdm progress bar.

    Returns:
        A :class:`LightSBFit` with the model (on the device of ``x0``), the loss history and
        the fit time.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> x0 = torch.randn(512, 1, generator=gen)
        >>> x1 = 2 * torch.randn(512, 1, generator=gen) + 3
        >>> fit = fit_light_sb(x0, x1, eps=1.0, n_components=1, steps=500, init_scale=1.0,
        ...                    generator=gen)
        >>> y = fit.model.transport(x0, generator=gen)
        >>> abs(y.mean().item() - 3) < 0.3 and abs(y.std().item() - 2) < 0.3
        True
    """
    options = (eps, n_components, steps, lr, batch_size, init_scale, generator, progress)
    return _fit(x0, x1, *options, loss=_unpaired_loss, paired=False, desc="LightSB")


def fit_light_sb_matching(
    x0: Any,
    x1: Any,
    *,
    eps: float,
    n_components: int = 50,
    steps: int = 3000,
    lr: float = 3e-2,
    batch_size: int = 512,
    init_scale: float = 0.1,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> LightSBFit:
    r"""Fit a :class:`LightSB` by bridge matching on given pairs (LightSB-M style).

    Regresses the model's closed-form drift on Brownian bridges between the pairs:
    :math:`x_t = (1-t)x_0 + t x_1 + \sqrt{\varepsilon t(1-t)}\,z`, target
    :math:`(x_1 - x_t)/(1 - t)`, loss :math:`\frac{1}{2\varepsilon}E\|f_\theta(x_t, t) -
    \text{target}\|^2` with :math:`t \sim U[0, 0.99]` — the path KL between the mixture of
    bridges over the pairs and the model's process (up to a constant), left unweighted in
    :math:`t` so that its minimiser stays the Schrödinger bridge. The Markovian projection of
    any coupling, restricted to the Schrödinger-bridge family that :class:`LightSB` spans, is
    the Schrödinger bridge (Gushchin et al., "Light and optimal Schrödinger bridge matching",
    ICML 2024), so the pairs may come from any coupling of the two laws — independent pairs
    included; pairs closer to the entropic plan make the regression less noisy. Optimiser,
    schedule and initialisation as in :func:`fit_light_sb`.

    Args:
        x0: Source samples ``(n, D)``.
        x1: Their partners ``(n, D)``: row ``i`` is paired with row ``i`` of ``x0``.
        eps: :math:`\varepsilon = \sigma^2` in the data's units.
        n_components: Mixture components :math:`K`.
        steps: Adam steps.
        lr: Peak learning rate (see :func:`fit_light_sb`).
        batch_size: Pairs per step.
        init_scale: Initial diagonal of :math:`S_k`.
        generator: Randomness of the initialisation, batches, times and bridge noise.
        progress: Show a tqdm progress bar.

    Returns:
        A :class:`LightSBFit`.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> x0 = torch.randn(512, 1, generator=gen)
        >>> x1 = 2 * torch.randn(512, 1, generator=gen) + 3  # independent pairs
        >>> fit = fit_light_sb_matching(x0, x1, eps=1.0, n_components=1, steps=500,
        ...                             init_scale=1.0, generator=gen)
        >>> y = fit.model.transport(x0, generator=gen)
        >>> abs(y.mean().item() - 3) < 0.3 and abs(y.std().item() - 2) < 0.3
        True
    """
    options = (eps, n_components, steps, lr, batch_size, init_scale, generator, progress)
    return _fit(x0, x1, *options, loss=_matching_loss, paired=True, desc="LightSB-M")


# One batch's loss: (model, x0 rows, x1 rows, generator) -> float64 scalar.
_BatchLoss = Callable[[LightSB, torch.Tensor, torch.Tensor, Any], torch.Tensor]


def _fit(
    x0: Any,
    x1: Any,
    eps: float,
    n_components: int,
    steps: int,
    lr: float,
    batch_size: int,
    init_scale: float,
    generator: torch.Generator | None,
    progress: bool,
    *,
    loss: _BatchLoss,
    paired: bool,
    desc: str,
) -> LightSBFit:
    """The body of both fitting functions: check, initialise, optimise ``loss``, time.

    Each step draws ``batch_size`` rows of ``x0`` and of ``x1`` (the same rows when
    ``paired``, else independent ones) and hands them to ``loss``.
    """
    a, b = _fit_inputs(x0, x1, paired=paired)
    steps, batch_size = check_int(steps, "steps", 1), check_int(batch_size, "batch_size", 1)
    start = time.perf_counter()
    model = _initial_model(a, b, eps, n_components, init_scale, generator)
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    draw = _index_sampler(generator, a.device)

    def batch_loss() -> torch.Tensor:
        ia = draw(a.shape[0], batch_size)
        ib = ia if paired else draw(b.shape[0], batch_size)
        return loss(model, a64[ia], b64[ib], generator)

    losses = _optimise(model, batch_loss, steps, lr, _scale(b), progress, desc)
    return LightSBFit(model=model, losses=losses, seconds=time.perf_counter() - start)


def _unpaired_loss(
    model: LightSB, xa: torch.Tensor, xb: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """:func:`fit_light_sb`'s objective (deterministic given the batches)."""
    return model._loss64(xa, xb)


def _matching_loss(
    model: LightSB, xa: torch.Tensor, xb: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """:func:`fit_light_sb_matching`'s bridge-matching loss on the pairs ``(xa, xb)``."""
    kw = {"dtype": torch.float64, "device": xa.device, "generator": generator}
    t = _T_MAX * rand((xa.shape[0], 1), **kw)
    z = randn(xa.shape, **kw)
    xt = (1 - t) * xa + t * xb + (model.eps * t * (1 - t)).sqrt() * z
    target = (xb - xt) / (1 - t)
    err = model._drift64(xt, t.reshape(-1)) - target
    return err.pow(2).sum(-1).mean() / (2.0 * model.eps)


def _fit_inputs(x0: Any, x1: Any, *, paired: bool) -> tuple[torch.Tensor, torch.Tensor]:
    a = as_samples(x0, "x0")
    b = as_samples(x1, "x1")
    check_same_feature_shape(a, b)
    if a.dim() != 2:
        raise ValueError(f"x0 and x1 must have shape (n, D); got {tuple(a.shape)}.")
    if paired and a.shape[0] != b.shape[0]:
        raise ValueError(
            f"x0 and x1 are pairs and need the same number of rows; got {a.shape[0]} and "
            f"{b.shape[0]}. For unpaired sets use fit_light_sb, or pair them first."
        )
    return a, b


def _scale(y: torch.Tensor) -> float:
    """Root mean variance of the samples (1 for a single sample or constant data)."""
    value = float(y.to(torch.float64).var(0).mean().sqrt()) if y.shape[0] > 1 else 0.0
    return value if value > 0 and math.isfinite(value) else 1.0


def _index_sampler(
    generator: torch.Generator | None, device: torch.device
) -> Callable[[int, int], torch.Tensor]:
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def draw(n: int, k: int) -> torch.Tensor:
        return torch.randint(0, n, (k,), generator=generator, device=gen_device).to(device)

    return draw


def _initial_model(
    a: torch.Tensor,
    b: torch.Tensor,
    eps: float,
    n_components: int,
    init_scale: float,
    generator: torch.Generator | None,
) -> LightSB:
    init_scale = check_positive(init_scale, "init_scale")
    model = LightSB(a.shape[1], n_components, eps, device=a.device)
    with torch.no_grad():
        model.center.copy_(a.mean(0))
        model.loc.copy_(_spread_init(b, n_components, generator))
        model.log_s.fill_(math.log(init_scale))
    return model


def _optimise(
    model: LightSB,
    batch_loss: Callable[[], torch.Tensor],
    steps: int,
    lr: float,
    scale: float,
    progress: bool,
    desc: str,
) -> torch.Tensor:
    """Adam with a cosine decay to zero; returns the loss per step (float64, CPU)."""
    lr = check_positive(lr, "lr")
    # Adam moves each parameter by about lr per step: the locations, in data units, get
    # lr times the target's scale so that a fit does not depend on the data's units.
    groups = [
        {"params": [model.loc], "lr": lr * scale},
        {"params": [model.log_alpha, model.log_s], "lr": lr},
    ]
    opt = torch.optim.Adam(groups, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1.0 + math.cos(math.pi * min(i, steps) / steps))
    )
    losses = torch.empty(steps, dtype=torch.float64)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, leave=False)
    for i in range(steps):
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses[i] = loss.detach()
        if bar is not None:
            bar.update()
            if i % 100 == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}")
    if bar is not None:
        bar.close()
    if not bool(torch.isfinite(losses[-1])):
        raise RuntimeError(
            f"{desc} training diverged (non-finite loss); lower lr or check the data's scale "
            f"against eps."
        )
    return losses
