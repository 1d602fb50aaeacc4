r"""Closed-form Schrödinger bridge between two Gaussians: the ground truth for tests.

For :math:`\mu_0 = \mathcal N(m_0, \Sigma_0)`, :math:`\mu_1 = \mathcal N(m_1, \Sigma_1)` and
the Brownian reference :math:`dX = \sigma\, dW` (entropic OT with cost :math:`\|x - y\|^2`
and ``reg`` :math:`= 2\sigma^2`), write :math:`s = \sigma^2`, :math:`R = \Sigma_0^{1/2}`,
:math:`D = (4 R \Sigma_1 R + s^2 I)^{1/2}`. Then (Janati et al. 2020; Mallasto et al. 2021;
Bunne et al. 2023):

* the static plan is Gaussian with cross-covariance
    :math:`C = \operatorname{Cov}(x_0, x_1) = \tfrac12 (R D R^{-1} - s I)`;
* the bridge :math:`x_t = (1-t) x_0 + t x_1 + \sigma\sqrt{t(1-t)}\,\varepsilon` has marginals
    :math:`\mathcal N(m_t, \Sigma_t)` with :math:`m_t = (1-t) m_0 + t m_1` and
    :math:`\Sigma_t = (1-t)^2 \Sigma_0 + t^2 \Sigma_1 + t(1-t)(C + C^\top) + s\,t(1-t) I`;
* as :math:`\sigma \to 0`, :math:`C \to \Sigma_0 A` with the Monge map
    :math:`x \mapsto m_1 + A (x - m_0)`, :math:`A = R^{-1} (R \Sigma_1 R)^{1/2} R^{-1}`.

Derived here (and checked in the tests):

* **probability-flow velocity.** Flow matching on the Brownian bridge regresses the
    conditional velocity :math:`u_t = x_1 - x_0 + \frac{1-2t}{2t(1-t)}(x_t - (1-t)x_0 - t x_1)
    = x_1 - x_0 + \frac{(1-2t)\sigma}{2\sqrt{t(1-t)}}\varepsilon` on :math:`x_t`. Everything is
    jointly Gaussian, so :math:`v(x, t) = E[u_t \mid x_t = x] = m_1 - m_0 + K_t \Sigma_t^{-1}
    (x - m_t)` with

    .. math:: K_t = \operatorname{Cov}(u_t, x_t) = t\Sigma_1 - (1-t)\Sigma_0 + (1-t) C^\top
              - t C + \tfrac{(1-2t)s}{2} I .

    Since :math:`K_t + K_t^\top = \dot\Sigma_t`, the field satisfies the Lyapunov equation
    :math:`B_v\Sigma_t + \Sigma_t B_v^\top = \dot\Sigma_t` for :math:`B_v = K_t\Sigma_t^{-1}`.
* **score.** :math:`\nabla_x \log p_t(x) = -\Sigma_t^{-1}(x - m_t)`.
* **SB drift.** :math:`f = v + \tfrac{s}{2}\nabla\log p_t = m_1 - m_0 + (K_t -
    \tfrac{s}{2} I)\Sigma_t^{-1}(x - m_t)`, which equals the mixture-of-bridges drift
    :math:`E[(x_1 - x_t)/(1-t) \mid x_t = x]` and satisfies
    :math:`B_f\Sigma_t + \Sigma_t B_f^\top + sI = \dot\Sigma_t` (Fokker–Planck).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sbflow._checks import check_finite

__all__ = ["GaussianBridge", "gaussian_kl", "sqrtm_psd"]


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    r"""Symmetric square root :math:`M^{1/2}` of a symmetric positive semi-definite matrix.

    Uses ``eigh``; tiny negative eigenvalues from rounding are clipped to zero.

    Example:
        >>> import torch
        >>> sqrtm_psd(torch.diag(torch.tensor([4.0, 9.0]))).diagonal().tolist()
        [2.0, 3.0]
    """
    sym = 0.5 * (matrix + matrix.transpose(-1, -2))
    evals, evecs = torch.linalg.eigh(sym)
    return (evecs * evals.clamp_min(0).sqrt().unsqueeze(-2)) @ evecs.transpose(-1, -2)


def gaussian_kl(mean_p: Any, cov_p: Any, mean_q: Any, cov_q: Any) -> float:
    r"""KL divergence :math:`\mathrm{KL}(\mathcal N(m_p, \Sigma_p)\,\|\,\mathcal N(m_q, \Sigma_q))`.

    .. math:: \tfrac12\big[\operatorname{tr}(\Sigma_q^{-1}\Sigma_p) + (m_q - m_p)^\top
              \Sigma_q^{-1}(m_q - m_p) - d + \log\det\Sigma_q - \log\det\Sigma_p\big]

    Computed in float64.

    Example:
        >>> import torch
        >>> round(gaussian_kl(torch.zeros(2), torch.eye(2), torch.ones(2), torch.eye(2)), 6)
        1.0
    """
    mp, cp, mq, cq = (
        torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).to(torch.float64)
        for a in (mean_p, cov_p, mean_q, cov_q)
    )
    d = mp.shape[0]
    lq = torch.linalg.cholesky(cq)
    lp = torch.linalg.cholesky(cp)
    diff = (mq - mp).unsqueeze(-1)
    trace = torch.cholesky_solve(cp, lq).diagonal().sum()
    maha = (diff * torch.cholesky_solve(diff, lq)).sum()
    logdet = 2.0 * (lq.diagonal().log().sum() - lp.diagonal().log().sum())
    return float(0.5 * (trace + maha - d + logdet))


def _as_float_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a tensor or array of numbers; got {value!r}.") from err
    if t.is_complex():
        raise TypeError(f"{name} is complex; pass a real-valued array.")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    check_finite(t, name)
    return t


class GaussianBridge:
    r"""Closed-form entropic OT plan and Schrödinger bridge between two Gaussians.

    See the module docstring for every formula. Computations run in float64; results of
    :meth:`marginal`, :meth:`cross_covariance`, ... use the inputs' dtype (``self.dtype``),
    and results of the fields (:meth:`velocity`, :meth:`score`, :meth:`drift`, ...) the
    dtype of ``x``.

    Args:
        mean0: Source mean, shape ``(d,)``.
        cov0: Source covariance ``(d, d)``, symmetric positive definite.
        mean1: Target mean ``(d,)``.
        cov1: Target covariance ``(d, d)``, symmetric positive definite.
        sigma: Noise level :math:`\sigma \ge 0` of the Brownian reference (``reg = 2σ²``);
            ``0`` gives the OT (Monge) interpolation.

    Example:
        >>> import torch
        >>> br = GaussianBridge(torch.zeros(2), torch.eye(2), torch.ones(2), torch.eye(2), 1.0)
        >>> mean, cov = br.marginal(0.5)  # halfway: mean halfway, covariance above I
        >>> mean.tolist(), cov.diagonal().round(decimals=4).tolist()
        ([0.5, 0.5], [1.059, 1.059])
    """

    def __init__(self, mean0: Any, cov0: Any, mean1: Any, cov1: Any, sigma: float) -> None:
        tensors = [
            _as_float_tensor(v, n)
            for v, n in ((mean0, "mean0"), (cov0, "cov0"), (mean1, "mean1"), (cov1, "cov1"))
        ]
        self.dtype = tensors[0].dtype
        for t in tensors[1:]:
            self.dtype = torch.promote_types(self.dtype, t.dtype)
        self.device = tensors[0].device
        m0, c0, m1, c1 = (t.to(dtype=torch.float64, device=self.device) for t in tensors)
        if m0.dim() != 1:
            raise ValueError(f"mean0 must have shape (d,); got {tuple(m0.shape)}.")
        d = m0.shape[0]
        for name, m in (("mean1", m1),):
            if m.shape != (d,):
                raise ValueError(f"{name} must have shape ({d},) like mean0; got {tuple(m.shape)}.")
        for name, c in (("cov0", c0), ("cov1", c1)):
            if c.shape != (d, d):
                raise ValueError(f"{name} must have shape ({d}, {d}); got {tuple(c.shape)}.")
            scale = float(c.abs().max())
            if float((c - c.T).abs().max()) > 1e-8 * max(scale, 1.0):
                raise ValueError(f"{name} is not symmetric; pass a symmetric covariance matrix.")
            if float(torch.linalg.eigvalsh(c).min()) <= 1e-12 * max(scale, 1e-300):
                raise ValueError(
                    f"{name} is not positive definite; add a small ridge (e.g. 1e-6·I)."
                )
        try:
            s = float(sigma)
        except (TypeError, ValueError) as err:
            raise TypeError(f"sigma must be a number >= 0; got {sigma!r}.") from err
        if not math.isfinite(s) or s < 0:
            raise ValueError(f"sigma must be a finite number >= 0; got {sigma!r}.")
        self.dim = d
        self.sigma = s
        self._m0, self._c0, self._m1, self._c1 = m0, 0.5 * (c0 + c0.T), m1, 0.5 * (c1 + c1.T)
        self._s = s * s
        eye = torch.eye(d, dtype=torch.float64, device=self.device)
        r = sqrtm_psd(self._c0)
        r_inv = torch.linalg.inv(r)
        rs1r = r @ self._c1 @ r
        dmat = sqrtm_psd(4.0 * rs1r + self._s**2 * eye)
        self._cross = 0.5 * (r @ dmat @ r_inv - self._s * eye)
        self._monge = r_inv @ sqrtm_psd(rs1r) @ r_inv
        self._monge = 0.5 * (self._monge + self._monge.T)
        self._eye = eye

    # ------------------------------------------------------------------ static plan
    @property
    def mean0(self) -> torch.Tensor:
        """Source mean ``(d,)``."""
        return self._m0.to(self.dtype)

    @property
    def mean1(self) -> torch.Tensor:
        """Target mean ``(d,)``."""
        return self._m1.to(self.dtype)

    @property
    def cov0(self) -> torch.Tensor:
        """Source covariance ``(d, d)``."""
        return self._c0.to(self.dtype)

    @property
    def cov1(self) -> torch.Tensor:
        """Target covariance ``(d, d)``."""
        return self._c1.to(self.dtype)

    def cross_covariance(self) -> torch.Tensor:
        r"""Cross-covariance :math:`C = \operatorname{Cov}(x_0, x_1) = \tfrac12(RDR^{-1} - sI)`.

        Example:
            >>> import torch
            >>> br = GaussianBridge(torch.zeros(1), torch.eye(1), torch.zeros(1), torch.eye(1), 0.0)
            >>> br.cross_covariance().item()
            1.0
        """
        return self._cross.to(self.dtype)

    def plan_covariance(self) -> torch.Tensor:
        r"""Covariance ``(2d, 2d)`` of the plan's joint :math:`(x_0, x_1)`:
        :math:`\begin{pmatrix}\Sigma_0 & C\\ C^\top & \Sigma_1\end{pmatrix}`.

        Example:
            >>> import torch
            >>> br = GaussianBridge(torch.zeros(1), torch.eye(1), torch.zeros(1), torch.eye(1), 1.0)
            >>> br.plan_covariance().round(decimals=4).tolist()  # C = (√5 − 1) / 2 here
            [[1.0, 0.618], [0.618, 1.0]]
        """
        top = torch.cat([self._c0, self._cross], dim=1)
        bottom = torch.cat([self._cross.T, self._c1], dim=1)
        return torch.cat([top, bottom], dim=0).to(self.dtype)

    def monge_matrix(self) -> torch.Tensor:
        r"""The symmetric matrix :math:`A = R^{-1}(R\Sigma_1 R)^{1/2}R^{-1}` of the Monge map.

        Example:
            >>> import torch
            >>> one = torch.eye(1)
            >>> br = GaussianBridge(torch.zeros(1), one, torch.zeros(1), 4 * one, 0.0)
            >>> br.monge_matrix().item()
            2.0
        """
        return self._monge.to(self.dtype)

    def monge_map(self, x: Any) -> torch.Tensor:
        r"""Optimal (σ = 0) transport map :math:`x \mapsto m_1 + A(x - m_0)`, rows of ``x``.

        Example:
            >>> import torch
            >>> one = torch.eye(1)
            >>> br = GaussianBridge(torch.zeros(1), one, torch.ones(1), 4 * one, 0.0)
            >>> br.monge_map(torch.tensor([[1.0]])).item()
            3.0
        """
        x_t, out_dtype = self._points(x)
        return (self._m1 + (x_t - self._m0) @ self._monge.T).to(out_dtype)

    def sample_plan(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` pairs ``(x0, x1)`` from the Gaussian plan, each ``(n, d)``.

        Example:
            >>> import torch
            >>> br = GaussianBridge(torch.zeros(2), torch.eye(2), torch.ones(2), torch.eye(2), 0.0)
            >>> x0, x1 = br.sample_plan(5, generator=torch.Generator().manual_seed(0))
            >>> x0.shape, torch.allclose(x1, x0 + 1, atol=1e-6)  # σ = 0, equal covariances: a shift
            (torch.Size([5, 2]), True)
        """
        n = self._count(n)
        mean = torch.cat([self._m0, self._m1])
        z = self._gaussian(mean, self.plan_covariance().to(torch.float64), n, generator)
        return z[:, : self.dim].to(self.dtype), z[:, self.dim :].to(self.dtype)

    # ------------------------------------------------------------------ marginals
    def marginal(self, t: Any) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean and covariance of the bridge marginal :math:`p_t`.

        Args:
            t: A time in ``[0, 1]`` (number or 0-d tensor), or a 1-D tensor of ``n`` times.

        Returns:
            ``(mean, cov)`` of shapes ``(d,)``, ``(d, d)`` for a scalar ``t``, or
            ``(n, d)``, ``(n, d, d)`` for ``n`` times.

        Example:
            >>> import torch
            >>> br = GaussianBridge(torch.zeros(1), torch.eye(1), torch.ones(1), torch.eye(1), 1.0)
            >>> [round(v.item(), 4) for v in br.marginal(0.5)]
            [0.5, 1.059]
        """
        tt, scalar = self._times(t)
        mean, cov = self._mean(tt), self._cov(tt)
        if scalar:
            mean, cov = mean[0], cov[0]
        return mean.to(self.dtype), cov.to(self.dtype)

    def sample_marginal(
        self, t: float, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` samples ``(n, d)`` from the marginal :math:`p_t` at a scalar time ``t``.

        Example:
            >>> import torch
            >>> br = GaussianBridge(torch.zeros(2), torch.eye(2), torch.ones(2), torch.eye(2), 1.0)
            >>> x = br.sample_marginal(0.3, 10000, generator=torch.Generator().manual_seed(0))
            >>> x.shape, torch.allclose(x.mean(0), br.marginal(0.3)[0], atol=0.05)
            (torch.Size([10000, 2]), True)
        """
        tt, scalar = self._times(t)
        if not scalar:
            raise ValueError("sample_marginal takes one scalar time t; loop for several.")
        n = self._count(n)
        return self._gaussian(self._mean(tt)[0], self._cov(tt)[0], n, generator).to(self.dtype)

    def log_prob(self, x: Any, t: Any) -> torch.Tensor:
        r"""Log-density :math:`\log p_t(x)` of the marginal at rows of ``x``, shape ``(n,)``.

        Example:
            >>> import math, torch
            >>> br = GaussianBridge(torch.zeros(1), torch.eye(1), torch.zeros(1), torch.eye(1), 0.0)
            >>> lp = br.log_prob(torch.zeros(1, 1), 0.0).item()
            >>> abs(lp + 0.5 * math.log(2 * math.pi)) < 1e-6
            True
        """
        x_t, out_dtype = self._points(x)
        tt, uniq, inv = self._grouped_times(t, x_t.shape[0])
        cov = self._cov(uniq)
        chol = torch.linalg.cholesky(cov)
        r = (x_t - self._mean(tt)).unsqueeze(-1)
        sol = torch.cholesky_solve(r, chol[inv]).squeeze(-1)
        maha = (r.squeeze(-1) * sol).sum(-1)
        logdet = 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)[inv]
        return (-0.5 * (maha + logdet + self.dim * math.log(2 * math.pi))).to(out_dtype)

    # ------------------------------------------------------------------ fields
    def velocity(self, x: Any, t: Any) -> torch.Tensor:
        r"""Probability-flow velocity :math:`v(x,t) = m_1 - m_0 + K_t\Sigma_t^{-1}(x - m_t)`.

        Example:
            >>> import torch
            >>> br = GaussianBridge(torch.zeros(1), torch.eye(1), torch.ones(1), torch.eye(1), 1.0)
            >>> br.velocity(torch.tensor([[0.5]]), 0.5).item()  # at the mean: m1 - m0
            1.0
        """
        return self._affine(x, t, "velocity")

    def score(self, x: Any, t: Any) -> torch.Tensor:
        r"""Score of the marginal :math:`\nabla_x\log p_t(x) = -\Sigma_t^{-1}(x - m_t)`.

        Example:
            >>> import torch
            >>> br = GaussianBridge(torch.zeros(1), torch.eye(1), torch.zeros(1), torch.eye(1), 0.0)
            >>> br.score(torch.tensor([[2.0]]), 0.0).item()
            -2.0
        """
        return self._affine(x, t, "score")

    def drift(self, x: Any, t: Any) -> torch.Tensor:
        r"""Schrödinger-bridge SDE drift :math:`f = v + \tfrac{\sigma^2}{2}\nabla\log p_t`.

        Simulating :math:`dx = f\,dt + \sigma\,dW` from :math:`\mathcal N(m_0, \Sigma_0)`
        reproduces the marginals :math:`p_t`.

        Example:
            >>> import torch
            >>> br = GaussianBridge(torch.zeros(1), torch.eye(1), torch.ones(1), torch.eye(1), 1.0)
            >>> br.drift(torch.tensor([[0.5]]), 0.5).item()
            1.0
        """
        return self._affine(x, t, "drift")

    # ------------------------------------------------------------------ internals
    def _mean(self, tt: torch.Tensor) -> torch.Tensor:
        return (1 - tt)[:, None] * self._m0 + tt[:, None] * self._m1

    def _cov(self, tt: torch.Tensor) -> torch.Tensor:
        a = ((1 - tt) ** 2)[:, None, None]
        b = (tt**2)[:, None, None]
        c = (tt * (1 - tt))[:, None, None]
        sym = self._cross + self._cross.T
        return a * self._c0 + b * self._c1 + c * (sym + self._s * self._eye)

    def _k(self, tt: torch.Tensor) -> torch.Tensor:
        """:math:`K_t = \\operatorname{Cov}(u_t, x_t)` for each time, ``(u, d, d)``."""
        t = tt[:, None, None]
        return (
            t * self._c1
            - (1 - t) * self._c0
            + (1 - t) * self._cross.T
            - t * self._cross
            + (0.5 * self._s) * (1 - 2 * t) * self._eye
        )

    def _affine(self, x: Any, t: Any, kind: str) -> torch.Tensor:
        x_t, out_dtype = self._points(x)
        tt, uniq, inv = self._grouped_times(t, x_t.shape[0])
        cov = self._cov(uniq)
        if kind == "score":
            lin = -self._eye.expand_as(cov)
            offset = torch.zeros_like(x_t)
        else:
            lin = self._k(uniq)
            if kind == "drift":
                lin = lin - 0.5 * self._s * self._eye
            offset = (self._m1 - self._m0).expand_as(x_t)
        # Row form: r @ (lin Σ⁻¹)ᵀ = r @ Σ⁻¹ linᵀ, with Σ⁻¹ linᵀ = solve(Σ, linᵀ).
        mat_t = torch.linalg.solve(cov, lin.transpose(-1, -2))
        r = x_t - self._mean(tt)
        if uniq.numel() == 1:
            out = r @ mat_t[0]
        elif uniq.numel() <= 32:
            out = torch.empty_like(r)
            for k in range(uniq.numel()):
                rows = inv == k
                out[rows] = r[rows] @ mat_t[k]
        else:
            out = torch.einsum("ni,nij->nj", r, mat_t[inv])
        return (offset + out).to(out_dtype)

    def _points(self, x: Any) -> tuple[torch.Tensor, torch.dtype]:
        x_t = _as_float_tensor(x, "x")
        if x_t.dim() != 2 or x_t.shape[1] != self.dim:
            raise ValueError(
                f"x must have shape (n, {self.dim}) for this {self.dim}-D bridge; "
                f"got {tuple(x_t.shape)}."
            )
        return x_t.to(dtype=torch.float64, device=self.device), x_t.dtype

    def _times(self, t: Any) -> tuple[torch.Tensor, bool]:
        tt = _as_float_tensor(t, "t").to(dtype=torch.float64, device=self.device)
        if tt.dim() > 1:
            raise ValueError(f"t must be a scalar or a 1-D tensor of times; got {tuple(tt.shape)}.")
        if bool((tt < 0).any()) or bool((tt > 1).any()):
            raise ValueError("t must lie in [0, 1].")
        return tt.reshape(-1), tt.dim() == 0

    def _grouped_times(self, t: Any, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tt, scalar = self._times(t)
        if scalar or tt.numel() == 1:
            tt = tt.reshape(()).expand(n)
        elif tt.numel() != n:
            raise ValueError(f"t has {tt.numel()} entries but x has {n} rows; pass (n,) times.")
        uniq, inv = torch.unique(tt, return_inverse=True)
        return tt, uniq, inv

    @staticmethod
    def _count(n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}.")
        return n

    def _gaussian(
        self,
        mean: torch.Tensor,
        cov: torch.Tensor,
        n: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
        factor = evecs * evals.clamp_min(0).sqrt()
        z = torch.randn(
            (n, mean.shape[0]), generator=generator, dtype=torch.float64, device=self.device
        )
        return mean + z @ factor.T
