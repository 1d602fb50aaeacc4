"""``fit``: compose a method, sample sets and the trainer into a :class:`~sbflow.Bridge`.

The pipeline: load the sets → standardise (one pooled scale) and map the times to
``τ ∈ [0, 1]`` → convert σ from the user's units to training units
(:mod:`sbflow.bridge.timemap`) → the method trains a field on the :class:`~sbflow.methods.Problem`
→ the bridge maps everything back to the user's units.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sbflow._checks import check_bool, check_int, check_path
from sbflow._fit_inputs import is_dataset_name, resolve_device, resolve_sets, split_sets
from sbflow._inference import data_range
from sbflow.bridge._bridge import Bridge
from sbflow.bridge.timemap import TimeMap, scalar_scale, to_internal
from sbflow.data.io import load_samples, remove_temp_files
from sbflow.methods import Method, Problem, TrainingRun, get_method_class
from sbflow.models.registry import build_model, describe_model
from sbflow.training.batches import Normalizer, SampleSet
from sbflow.training.distributed import COUPLING_SCOPES, init_distributed, is_main
from sbflow.training.trainer import TrainConfig

__all__ = ["fit", "leave_one_out"]


def fit(
    source: Any,
    target: Any = None,
    method: str | Method = "ot-cfm",
    *,
    times: Sequence[float] | None = None,
    coupling: Any = None,
    sigma: float | None = None,
    paired: bool = False,
    model: str | nn.Module | None = None,
    model_config: dict[str, Any] | None = None,
    hidden: int | None = None,
    depth: int = 3,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    warmup_steps: int = 100,
    lr_schedule: str = "cosine",
    grad_clip: float | None = 1.0,
    ema_decay: float = 0.999,
    seed: int = 0,
    device: Any = "cpu",
    normalise: bool | str = True,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    checkpoint_every: int = 500,
    log_every: int = 50,
    progress: bool = True,
    prefetch: int = 4,
    prefetch_workers: int | None = None,
    tensorboard: bool = False,
    num_threads: int | None = 1,
    key: str | None = None,
    dim: int | None = None,
    callbacks: Sequence[Callable[..., None]] = (),
    distributed: bool | str = "auto",
    coupling_scope: str = "local",
    precision: str = "fp32",
    train: TrainConfig | None = None,
) -> Bridge:
    """Fit a flow (OT-CFM, I-CFM, FM, VP-CFM) or a Schrödinger bridge (SB-CFM, any method).

    Args:
        source: Source samples: tensor/array ``(n, *dims)``, a file (``.npy``, ``.npz``,
            ``.csv``, ``.pt``, ``.h5ad``), or a built-in name (``"8gaussians"``…, drawn fresh
            each step). A *list* of sets with ``times`` fits one model through all of them
            (trajectory inference; leave ``target`` out).
        target: Target samples, same forms as ``source``. For ``method="fm"`` the source is
            the standard normal: pass ``"normal"`` (or ``None``) as ``source``.
        method: A registered method name (:func:`sbflow.methods.method_names`: ``"ot-cfm"``,
            ``"i-cfm"``, ``"sb-cfm"``, ``"fm"``, ``"vp-cfm"``, and any you register) or a
            :class:`~sbflow.methods.Method` instance.
        times: Times of the sets in a list (increasing), e.g. days ``[0, 2, 4]``.
        coupling: Override the method's coupling (``"exact"``, ``"sinkhorn"``, a solver).
        sigma: σ in the data's units per unit of ``times`` (σ² is the variance rate of the
            reference Brownian motion; entropic ``reg = 2σ²`` on ‖x − y‖²). ``None``: the
            method's default (SB-CFM: ``0.5 · s_data / √(t_K − t_0)``, ``s_data`` the pooled
            standard deviation of the data). For ``fm`` it is the dimensionless ``σ_min``.
        paired: Rows of consecutive sets are matched samples (a supervised bridge): pairs are
            drawn as given instead of being coupled. Needs data sets of equal size.
        model: A registered model name (``"time-mlp"``, ``"flow-score-mlp"``,
            ``"small-unet"``, your own) or a module from :func:`sbflow.models.build_model`.
            Default: the method's MLP of width ``hidden`` and ``depth`` layers.
        model_config: Config of a named ``model`` (e.g. ``{"in_channels": 1}``).
        hidden: Width of the default MLP; ``None``: the method's choice
            (:meth:`~sbflow.methods.Method.default_width`: 64, or growing with the
            dimension for ``sb-cfm`` and ``imf``).
        depth: Number of hidden layers of the default MLP.
        steps: Optimiser steps.
        batch_size: Pairs per step (per interval for several snapshots).
        lr: Peak AdamW learning rate (after ``warmup_steps`` of linear warm-up).
        weight_decay: AdamW weight decay.
        warmup_steps: Linear learning-rate warm-up.
        lr_schedule: ``"cosine"`` (decay to 0 at ``steps``) or ``"constant"`` after warm-up.
            With cosine at the default lr, OT-CFM beats I-CFM in W2 at 3 000 steps on
            8gaussians → moons (0.325 vs 0.335, mean of 6 seeds); settings that learn faster
            let I-CFM catch up (cosine at lr 5e-3: 0.292 vs 0.285). See the benchmarks page.
        grad_clip: Global gradient-norm clipping (``None`` to disable).
        ema_decay: Decay of the weight EMA used by the returned bridge.
        seed: Seed of the model initialisation and of every batch.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        normalise: Standardise the data with the pooled mean and one scale (``True``), one
            scale per feature (``"features"``; refused when σ > 0 since it would make the
            reference noise anisotropic) or not at all (``False``). Internal only: σ, times
            and outputs stay in the user's units, so the bridge is the same either way.
        run_dir: Directory for checkpoints and logs; an interrupted fit continues from its
            last checkpoint when called again with the same arguments.
        resume: Continue from ``run_dir``'s checkpoint if there is one (``False``: restart).
        checkpoint_every: Steps between checkpoints.
        log_every: Steps between log rows.
        progress: Show a progress bar.
        prefetch: Batches coupled ahead in a background thread (0 disables).
        prefetch_workers: Threads computing batches (couplings) in parallel; ``None``: one
            for entropic couplings (a second only contends for the GIL), else two.
        tensorboard: Also log to TensorBoard in ``run_dir`` (needs ``tensorboard``).
        num_threads: Torch intra-op threads during training on the CPU (restored after);
            ``None`` keeps torch's setting. Ignored on a GPU.
        key: Array name inside ``.npz``/``.pt`` files or AnnData ``obsm`` key.
        dim: Dimension of the built-in ``"normal"`` set when no data fixes it.
        callbacks: ``callback(trainer, step, loss)`` after every step.
        distributed: ``"auto"`` trains with DDP under ``torchrun``; ``True`` requires it,
            ``False`` ignores it. ``batch_size`` is then per process.
        coupling_scope: ``"local"`` couples each process's batch on its own; ``"global"``
            gathers the batches of all processes and solves one coupling of them.
        precision: ``"fp32"``, or ``"bf16"`` for a bfloat16 autocast forward pass (CUDA).
        train: All optimisation and checkpoint settings as one
            :class:`~sbflow.training.TrainConfig` (``steps``, ``lr``, …, ``seed``), instead of
            the keywords of the same names (which must then be left at their defaults). Its
            own defaults apply (``TrainConfig``'s ``lr_schedule`` is ``"constant"``).

    Returns:
        The fitted :class:`~sbflow.Bridge`, with σ in data units per unit time. Its
        ``data_range`` holds the per-feature minimum and maximum of each sample set (of the
        10 000 points drawn for the standardisation for built-in names), which
        ``transport(..., clip=True)`` clips to.

    Raises:
        ValueError: Bad data (shapes, NaN, unknown names, unreadable files) or options.
        KeyboardInterrupt: On Ctrl-C, after writing a checkpoint to ``run_dir``.

    Example:
        >>> bridge = sbflow.fit("8gaussians", "moons", method="sb-cfm", sigma=0.3, steps=5,
        ...                     hidden=8, depth=1, batch_size=16, progress=False, prefetch=0)
        >>> bridge.sigma, bridge.simulation, bridge.transport(torch.zeros(3, 2)).shape
        (0.3, 'sde', torch.Size([3, 2]))
    """
    config = _train_config(train, {name: value for name, value in locals().items()
                                   if name in _TRAIN_KEYWORDS})  # fmt: skip
    _check_options(config, run_dir, paired, resume, key, dim, callbacks, model_config)
    seed = config.seed
    cls = _method_class(method)
    sets_in, times = split_sets(source, target, times, cls.gaussian_source)
    if cls.gaussian_source and (
        len(sets_in) != 2
        or not is_dataset_name(sets_in[0])
        or sets_in[0].strip().lower() != "normal"
    ):
        raise ValueError(
            f"method {cls.name!r} transports the standard normal: pass source='normal' (or "
            f"None) and the data as target."
        )
    hidden = None if hidden is None else check_int(hidden, "hidden", 1)
    depth = check_int(depth, "depth", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    if normalise not in (True, False, "features"):
        raise ValueError(f"normalise must be True, False or 'features'; got {normalise!r}.")
    if coupling_scope not in COUPLING_SCOPES:
        raise ValueError(
            f"coupling_scope must be one of {COUPLING_SCOPES}; got {coupling_scope!r}."
        )
    if isinstance(method, Method):
        if coupling is not None or sigma is not None:
            raise ValueError("with a Method instance, set sigma and coupling on the instance.")
        meth = method
    else:
        meth = cls(sigma=sigma, coupling=coupling)
    dev = resolve_device(device)
    ctx = init_distributed(distributed, device=dev)
    if ctx is not None:
        dev = ctx.device  # cuda:LOCAL_RANK on GPUs

    loaded, feature_shape = resolve_sets(sets_in, key, dim)
    features = math.prod(feature_shape)
    stats_gen = torch.Generator().manual_seed(seed)
    stats_sets = [
        s.reshape(s.shape[0], -1).float()
        if isinstance(s, torch.Tensor)
        else SampleSet(name=s, dim=features).draw(10_000, stats_gen)
        for s in loaded
    ]
    timemap = TimeMap(times)
    ranges = [data_range(s) for s in stats_sets]
    observed = tuple(
        torch.stack([r[k] for r in ranges]).reshape(len(ranges), *feature_shape) for k in (0, 1)
    )
    pooled = Normalizer.fit(stats_sets)
    sigma_data = meth.resolve_sigma(float(pooled.scale[0]), timemap.span)
    if meth.simulation == "sde" and not sigma_data > 0:
        raise ValueError(
            f"method {cls.name!r} simulates an SDE and needs sigma > 0; got sigma={sigma_data}."
        )
    if normalise is False or cls.gaussian_source:
        normalizer = Normalizer.identity(features)
    elif normalise == "features":
        if sigma_data > 0 and meth.sigma_units == "data":
            raise ValueError(
                f"normalise='features' scales each feature differently, which would turn the "
                f"isotropic reference noise of σ = {sigma_data:g} into an anisotropic one (a "
                f"different bridge); use normalise=True (one pooled scale) or False."
            )
        normalizer = Normalizer.fit(stats_sets, per_feature=True)
    else:
        normalizer = pooled
    scale = scalar_scale(normalizer.scale) or 1.0
    if meth.sigma_units == "none":
        sigma_z = sigma_data
    else:
        sigma_z = to_internal(sigma_data, scale=scale, span=timemap.span)
        _check_relative_sigma(sigma_data, sigma_z, scale, timemap.span, meth.simulation)
    sets = [
        SampleSet(normalizer.encode(flat))
        if isinstance(s, torch.Tensor)
        else SampleSet(name=s, dim=features)
        for s, flat in zip(loaded, stats_sets)
    ]
    if paired and any(s.data is None for s in sets):
        raise ValueError("paired=True needs data sets (matched rows), not built-in generators.")
    problem = Problem(
        sets=sets,
        taus=[timemap.tau(t) for t in times],
        sigma=sigma_z,
        feature_shape=tuple(feature_shape),
        encode=normalizer.encode,
        paired=bool(paired),
        batch_size=batch_size,
        seed=seed,
        extras={"device": dev, "distributed": ctx},
    )
    if paired:
        meth.pair_sources(problem, 0, None)  # checks equal sizes before training
    else:
        _check_batch_memory(meth, problem, 1 if ctx is None else ctx.world_size, coupling_scope)
    net = _build(meth, model, model_config, features, feature_shape, hidden, depth, seed)
    net_name, net_config = describe_model(net) if net is not None else (None, None)
    if dev.type != "cpu":
        config.num_threads = None  # threads only matter on the CPU
    if coupling_scope == "global" and ctx is not None:
        config.prefetch_workers = 1  # the coupling collectives must run in step order
    # What defines the run (resume refuses a checkpoint that differs; the Trainer checks the
    # optimisation settings itself), then the record kept on the bridge.
    meta = {
        **{k: v for k, v in meth.describe().items() if k != "name"},
        "method": cls.name,
        "sigma": sigma_data,
        "model": {"name": net_name, "config": net_config},
        "batch_size": batch_size,
        "paired": bool(paired),
        "normalise": normalise,
        "times": times,
    }
    record = {
        **meta,
        **{k: v for k, v in dataclasses.asdict(config).items() if k in config.resume_key()},
        "coupling_scope": coupling_scope,
        "world_size": 1 if ctx is None else ctx.world_size,
    }
    meta["data"] = [s.fingerprint() for s in sets]
    run = TrainingRun(
        config=config, run_dir=run_dir, resume=resume, meta=meta, callbacks=callbacks,
        device=dev, distributed=ctx, coupling_scope=coupling_scope,
    )  # fmt: skip
    field, history = meth.train(problem, net, run)
    bridge = Bridge(
        field,
        method=cls.name,
        feature_shape=feature_shape,
        times=times,
        normalizer=normalizer,
        sigma=sigma_data if meth.simulation == "sde" else 0.0,
        simulation=meth.simulation,
        base="normal" if (isinstance(loaded[0], str) and loaded[0] == "normal") else None,
        options={**record, "steps": config.steps},
        history=history,
        data_range=observed,
    )
    if run_dir is not None and is_main(ctx):
        # what a run killed while writing bridge.pt left behind (the trainer cleans its own)
        remove_temp_files(Path(run_dir) / "bridge.pt")
        bridge.save(Path(run_dir) / "bridge.pt")
    if ctx is not None:
        ctx.barrier()  # bridge.pt is written before any rank returns
    return bridge


_TRAIN_KEYWORDS = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.name in inspect.signature(fit).parameters
)


def _train_config(train: TrainConfig | None, keywords: dict[str, Any]) -> TrainConfig:
    """``train`` (a copy) or a config of ``fit``'s keywords, validated; both at once: error."""
    if train is None:
        config = TrainConfig(**keywords)
    elif not isinstance(train, TrainConfig):
        raise TypeError(f"train must be a sbflow.training.TrainConfig; got {type(train).__name__}.")
    else:
        defaults = inspect.signature(fit).parameters
        both = [k for k, v in keywords.items() if v != defaults[k].default]
        if both:
            raise ValueError(
                f"{', '.join(both)} given both as keywords and in train=TrainConfig(...); set "
                f"them in one place."
            )
        config = dataclasses.replace(train)
    config.validate()
    if config.steps < 1:
        raise ValueError(
            f"steps must be a positive integer (1, 2, ...); got {config.steps!r}: zero steps "
            f"would return an untrained network. To reuse a finished run, use "
            f"sbflow.load(run_dir / 'bridge.pt')."
        )
    return config


def _check_relative_sigma(
    sigma: float, sigma_z: float, scale: float, span: float, simulation: str
) -> None:
    """Refuse a σ that is absurd next to the data: ``σ_z = σ·√span/scale`` out of range.

    Above 1e8 the paths are pure noise (and σ_z² nears float32's range); for an SDE, below
    1e-4 the entropic couplings (``reg = 2σ_z²``) underflow and the bridge is optimal
    transport anyway.
    """
    low = 1e-4 if simulation == "sde" else 0.0
    if sigma <= 0 or low <= sigma_z <= 1e8:
        return
    advice = (
        "use method='ot-cfm' (the σ → 0 limit) or a larger sigma"
        if sigma_z < low
        else "pass a sigma comparable to the data's spread per √time"
    )
    raise ValueError(
        f"sigma={sigma:g} is {'tiny' if sigma_z < 1 else 'huge'} next to the data (scale "
        f"{scale:g}) over the time span {span:g}: σ·√span/scale = {sigma_z:.1e}; {advice}."
    )


def _method_class(method: Any) -> type[Method]:
    """The class of a Method instance or of a registered name."""
    if isinstance(method, Method):
        return type(method)
    if not isinstance(method, str):
        raise TypeError(
            f"method must be a registered name (e.g. 'ot-cfm', 'sb-cfm') or a "
            f"sbflow.methods.Method instance; got {method!r}."
        )
    return get_method_class(method)


def _check_options(
    config: TrainConfig,
    run_dir: Any,
    paired: Any,
    resume: Any,
    key: Any,
    dim: Any,
    callbacks: Any,
    model_config: Any,
) -> None:
    """Type and consistency checks of ``fit``'s options that need no data."""
    if run_dir is not None:
        check_path(run_dir, "run_dir")
    elif config.tensorboard:
        raise ValueError(
            "tensorboard=True writes its logs to run_dir/tensorboard: pass run_dir=... or "
            "leave tensorboard off."
        )
    check_bool(paired, "paired")
    check_bool(resume, "resume")
    if key is not None and not isinstance(key, str):
        raise TypeError(
            f"key must be the name of an array inside the file (a str) or None; got {key!r}."
        )
    if dim is not None:
        check_int(dim, "dim", 1)
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise TypeError(
            f"callbacks must be a list of functions callback(trainer, step, loss); got "
            f"{callbacks!r}."
        )
    for k, callback in enumerate(callbacks):
        if not callable(callback):
            raise TypeError(
                f"callbacks[{k}] must be a function callback(trainer, step, loss); got "
                f"{callback!r}."
            )
    if model_config is not None and not isinstance(model_config, dict):
        raise TypeError(
            f"model_config must be a dict of the model's arguments (e.g. {{'in_channels': 1}}) "
            f"or None; got {model_config!r}."
        )


def _check_batch_memory(meth: Method, problem: Problem, world: int, scope: str) -> None:
    """Refuse, before training, a batch whose dense coupling cannot fit in memory.

    Batches larger than a data set are drawn with replacement, so ``batch_size`` alone sets
    the ``(B, B)`` cost matrix of every minibatch coupling (``B`` times the number of
    processes with ``coupling_scope='global'``). The coupling layer checks each allocation
    too, but only once training has started.
    """
    from sbflow._memory import require_memory
    from sbflow.couplings import keops_available
    from sbflow.couplings.sinkhorn import KEOPS_THRESHOLD

    b = problem.batch_size * (world if scope == "global" else 1)
    features = math.prod(problem.feature_shape)
    require_memory(
        8 * b * features * 4,  # x0, x1, x_t, targets, noise, outputs, gradients: ~8 copies
        what=f"the training batches of batch_size={b} with {features} features",
        hint="Use a smaller batch_size.",
    )
    if type(meth).path is Method.path:
        return  # closed-form methods sample no pairs
    solver = meth.matcher_for(problem.interval_sigma(0)).solver
    if solver is None or getattr(solver, "name", "") == "independent":
        return
    backend = getattr(solver, "backend", None)
    if backend == "keops" or (backend == "auto" and b * b > KEOPS_THRESHOLD and keops_available()):
        return  # KeOps never stores the (B, B) matrix
    cost_dtype = solver._cost_dtype(torch.float32) if hasattr(solver, "_cost_dtype") else None
    itemsize = (cost_dtype or torch.float32).itemsize
    sizes = [len(s.data) for s in problem.sets if s.data is not None]
    larger = (
        f"; the smallest data set has {min(sizes)} samples, larger batches repeat them"
        if sizes and b > min(sizes)
        else ""
    )
    require_memory(
        b * b * itemsize,
        what=(
            f"the dense ({b}, {b}) cost matrix of each training batch (batch_size={b}, "
            f"coupling {solver.name!r}{larger})"
        ),
        hint=(
            "Use a smaller batch_size (minibatch couplings of a few hundred to a few "
            "thousand samples are usual), or coupling=Sinkhorn(backend='keops'), which never "
            "stores the matrix."
        ),
    )


def _build(
    meth: Method,
    model: Any,
    model_config: dict[str, Any] | None,
    features: int,
    feature_shape: Sequence[int],
    hidden: int | None,
    depth: int,
    seed: int,
) -> nn.Module | None:
    """The network to train: given, named, or the method's default (seeded); ``None``: none."""
    if isinstance(model, nn.Module):
        if model_config is not None:
            raise ValueError("model_config is for a model given by name, not a built module.")
        describe_model(model)  # a clear error now rather than when saving
        return model
    if model is None:
        default = meth.default_model(features, feature_shape)
        if default is None:
            return None
        name, config = default
        if name in ("time-mlp", "flow-score-mlp"):
            width = meth.default_width(features) if hidden is None else hidden
            config = {**config, "hidden": width, "depth": depth}
        config.update(model_config or {})
    elif isinstance(model, str):
        name, config = model, dict(model_config or {})
    else:
        raise TypeError(f"model must be a registered name or an nn.Module; got {model!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, **config)


def leave_one_out(
    snapshots: Sequence[Any],
    times: Sequence[float],
    index: int,
    **fit_options: Any,
) -> dict[str, float]:
    """Hold out one intermediate snapshot, fit through the others, score the interpolation.

    Fits one model through every snapshot except ``snapshots[index]``, transports
    ``snapshots[index − 1]`` from ``times[index − 1]`` to ``times[index]`` (ODE, or SDE for
    bridge methods) and compares the result with the held-out snapshot.

    Args:
        snapshots: Sample sets in time order (tensors, arrays, files).
        times: Their times.
        index: Which snapshot to leave out; an interior one (``0 < index < len − 1``).
        **fit_options: Passed to :func:`fit` (``method``, ``steps``, ``seed``…).

    Returns:
        ``{"w1", "w2", "energy", "mmd", "index", "time"}`` of the prediction vs the held-out
        snapshot.

    Example:
        >>> leave_one_out([torch.zeros(4, 2)] * 2, [0, 1], index=1)
        Traceback (most recent call last):
        ...
        ValueError: leave-one-out needs at least three snapshots.
    """
    from sbflow.metrics import energy_distance, mmd, wasserstein

    if isinstance(snapshots, (str, bytes)) or not isinstance(snapshots, Sequence):
        raise TypeError(
            f"snapshots must be a list of sample sets (tensors, arrays or files); got "
            f"{type(snapshots).__name__}."
        )
    snapshots = list(snapshots)
    times = split_sets(snapshots, None, times, False)[1]
    if len(snapshots) < 3:
        raise ValueError("leave-one-out needs at least three snapshots.")
    index = check_int(index, "index", 0)
    if not 0 < index < len(snapshots) - 1:
        raise ValueError(
            f"index must be an interior snapshot, 1 … {len(snapshots) - 2}; got {index!r}. "
            f"The first and last cannot be interpolated."
        )
    sde = fit_options.pop("sde", None)
    if sde is not None:
        check_bool(sde, "sde")
    key = fit_options.get("key")
    kept = [s for k, s in enumerate(snapshots) if k != index]
    kept_times = [t for k, t in enumerate(times) if k != index]
    bridge = fit(kept, times=kept_times, **fit_options)
    start = load_samples(snapshots[index - 1], key=key)
    held = load_samples(snapshots[index], key=key)
    gen = torch.Generator().manual_seed(int(fit_options.get("seed", 0)))
    pred = bridge.transport(
        start, t_start=times[index - 1], t_end=times[index], sde=sde, generator=gen
    )
    return {
        "index": float(index),
        "time": times[index],
        "w1": wasserstein(pred, held, p=1),
        "w2": wasserstein(pred, held),
        "energy": energy_distance(pred, held),
        "mmd": mmd(pred, held),
    }
