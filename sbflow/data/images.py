"""Pixels of an image as samples, and back.

An image array of shape ``(H, W, C)`` is not a sample set: read as samples it would be ``H``
samples of shape ``(W, C)``, which is never what is meant, so sbflow rejects such arrays
(see :func:`sbflow._checks.as_samples`). To couple or transport the *colours* of an image,
turn it into ``H·W`` samples of ``C`` features with :func:`pixels`, and turn the result
back into an image with :func:`unpixels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["pixels", "unpixels"]

_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0, "bool": 1.0}


def _as_array(x: Any, name: str) -> np.ndarray | torch.Tensor:
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return x
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be a NumPy array or a tensor; got {type(x).__name__}."
        ) from err


def pixels(
    image: Any, *, scale: float | None = None, channel_axis: int = -1
) -> np.ndarray | torch.Tensor:
    """The pixels of one image as samples: ``(H, W, C)`` → ``(H·W, C)`` in ``[0, 1]``.

    Values are divided by ``scale``: by default 255 for ``uint8``, 65 535 for ``uint16``,
    1 for booleans and floats (float images must then already lie in ``[0, 1]``). Rows run
    over the image in row-major order, so :func:`unpixels` puts them back in place.

    Args:
        image: ``(H, W)`` grey-scale or ``(H, W, C)`` image (NumPy or torch).
        scale: The value of a full-intensity pixel (e.g. ``255`` for float images holding
            0 … 255); ``None`` picks it from the dtype.
        channel_axis: Axis of the channels: ``-1`` (``(H, W, C)``, NumPy and PIL images)
            or ``0`` (``(C, H, W)``, torchvision).

    Returns:
        ``(H·W, C)`` floating samples (``C = 1`` for grey-scale) of the input's array type:
        float32 for integer images, the input's dtype for float images.

    Raises:
        ValueError: If ``image`` is not 2-D or 3-D, or a float image lies outside
            ``[0, 1]`` without a ``scale``.

    Example:
        >>> img = np.array([[[255, 0, 0], [0, 255, 0]]], dtype=np.uint8)  # 1 × 2 pixels
        >>> pixels(img).tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    arr = _as_array(image, "image")
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"image has shape {tuple(arr.shape)}; pass one image of shape (H, W) or (H, W, C)."
        )
    is_torch = isinstance(arr, torch.Tensor)
    if arr.ndim == 2:
        arr = arr[..., None]
    elif channel_axis not in (-1, 2):
        if channel_axis != 0:
            raise ValueError(f"channel_axis must be -1 or 0; got {channel_axis!r}.")
        arr = arr.permute(1, 2, 0) if is_torch else np.moveaxis(arr, 0, -1)
    default = _FULL_SCALE.get(str(arr.dtype).replace("torch.", ""))
    floating = arr.is_floating_point() if is_torch else np.issubdtype(arr.dtype, np.floating)
    if floating:
        values = arr
    else:
        values = arr.to(torch.float32) if is_torch else arr.astype(np.float32)
    if scale is None:
        if default is None and not floating:
            raise ValueError(
                f"image has dtype {arr.dtype}; pass scale= (the value of a full-intensity pixel)."
            )
        scale = default or 1.0
        low, high = float(values.min()), float(values.max())
        if floating and (low < 0.0 or high > 1.0):
            raise ValueError(
                f"image is a float image with values in [{low:.4g}, {high:.4g}], not in [0, 1]; "
                f"pass scale=255 (or the value of a full-intensity pixel)."
            )
    elif not (float(scale) > 0):
        raise ValueError(f"scale must be a number > 0; got {scale!r}.")
    flat = values.reshape(-1, values.shape[-1])
    return flat / float(scale)  # a new array, never a view of the caller's image


def unpixels(x: Any, shape: Sequence[int], *, dtype: Any = None) -> np.ndarray | torch.Tensor:
    """Put ``(H·W, C)`` pixel samples back into an image of ``shape``, clipped to ``[0, 1]``.

    The inverse of :func:`pixels`: transported colours can leave ``[0, 1]``; they are clipped
    so that the result displays as an image.

    Args:
        x: ``(H·W, C)`` samples (NumPy or torch), e.g. ``bridge.transport(pixels(img))``.
        shape: ``(H, W)`` or ``(H, W, C)`` of the image (``img.shape``).
        dtype: ``np.uint8`` / ``torch.uint8`` for 0 … 255 integers; default: ``x``'s dtype.

    Returns:
        The image, of ``x``'s array type.

    Raises:
        ValueError: If ``x`` does not hold ``H·W`` pixels of the right channel count.

    Example:
        >>> img = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
        >>> np.array_equal(unpixels(pixels(img), img.shape, dtype=np.uint8), img)
        True
    """
    arr = _as_array(x, "x")
    shape = tuple(int(d) for d in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be (H, W) or (H, W, C); got {shape}.")
    channels = shape[2] if len(shape) == 3 else 1
    if arr.ndim != 2 or arr.shape[0] != shape[0] * shape[1] or arr.shape[1] != channels:
        raise ValueError(
            f"x has shape {tuple(arr.shape)}, but an image of shape {shape} needs "
            f"({shape[0] * shape[1]}, {channels}) pixel samples."
        )
    if isinstance(arr, torch.Tensor):
        img = arr.clamp(0.0, 1.0).reshape(shape)
        if dtype in (torch.uint8, np.uint8):
            return (img * 255).round().to(torch.uint8)
        return img if dtype is None else img.to(dtype)
    img = np.clip(arr, 0.0, 1.0).reshape(shape)
    if dtype is not None and np.dtype(dtype) == np.uint8:
        return np.rint(img * 255).astype(np.uint8)
    return img if dtype is None else img.astype(dtype)
