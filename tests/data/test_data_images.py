"""Images are never read as samples silently; pixels/unpixels convert explicitly and invert."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbflow._checks import as_samples
from sbflow.data import pixels, unpixels

RNG = np.random.default_rng(0)
PHOTO = RNG.integers(0, 256, (32, 24, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "image",
    [
        PHOTO,
        PHOTO.astype(np.float64) / 255,  # skimage.img_as_float
        PHOTO.astype(np.float32),  # 0 … 255 floats
        torch.from_numpy(PHOTO),
        np.dstack([PHOTO, np.full(PHOTO.shape[:2], 255, np.uint8)]),  # RGBA
    ],
)
def test_one_image_is_rejected_with_the_way_out(image):
    with pytest.raises(ValueError, match=r"looks like an RGBA? image") as err:
        as_samples(image, "x0")
    assert "sbflow.data.pixels(x0)" in str(err.value)
    assert "reshape" in str(err.value)  # and how to say "these really are samples"


@pytest.mark.parametrize(
    "batch",
    [
        RNG.random((16, 3, 8, 8)),  # (n, C, H, W), as SmallUNet takes
        RNG.random((16, 8, 8)),  # (n, H, W)
        RNG.integers(0, 256, (10, 28, 28), dtype=np.uint8),  # MNIST-like uint8 batch
        RNG.random((10, 8, 8, 3)),  # (n, H, W, C)
        RNG.normal(size=(100, 22, 3)),  # 100 conformations of 22 atoms in 3-D
        RNG.random((5, 40, 3)),  # fewer than 8 rows: not an image
        RNG.random((40, 40, 2)),  # two channels: not an image
    ],
)
def test_sample_batches_still_pass(batch):
    assert tuple(as_samples(batch, "x0").shape) == batch.shape


def test_the_suggested_reshape_is_accepted():
    x = PHOTO.astype(np.float32) / 255
    assert as_samples(x.reshape(len(x), -1), "x0").shape == (32, 72)


def test_pixels_round_trip_numpy_and_torch():
    samples = pixels(PHOTO)
    assert samples.shape == (32 * 24, 3) and samples.dtype == np.float32
    assert samples.min() >= 0 and samples.max() <= 1
    np.testing.assert_allclose(samples[24 * 5 + 7], PHOTO[5, 7] / 255, rtol=1e-6)  # row-major
    np.testing.assert_array_equal(unpixels(samples, PHOTO.shape, dtype=np.uint8), PHOTO)
    t = torch.from_numpy(PHOTO)
    st = pixels(t)
    assert isinstance(st, torch.Tensor) and st.dtype == torch.float32
    assert torch.equal(unpixels(st, PHOTO.shape, dtype=torch.uint8), t)
    chw = pixels(t.permute(2, 0, 1), channel_axis=0)
    assert torch.equal(chw, st)


def test_pixels_of_grey_and_float_images():
    grey = PHOTO[..., 0]
    assert pixels(grey).shape == (32 * 24, 1)
    np.testing.assert_array_equal(unpixels(pixels(grey), grey.shape, dtype=np.uint8), grey)
    as_float = PHOTO / 255.0
    out = pixels(as_float)
    assert out.dtype == np.float64 and not np.shares_memory(out, as_float)
    with pytest.raises(ValueError, match="scale=255"):
        pixels(PHOTO.astype(np.float64))
    np.testing.assert_allclose(pixels(PHOTO.astype(np.float64), scale=255), out)


def test_unpixels_clips_transported_colours_and_checks_shape():
    x = np.array([[-0.5, 0.5, 1.7]] * 6)
    img = unpixels(x, (2, 3, 3))
    assert img.shape == (2, 3, 3) and img.min() == 0.0 and img.max() == 1.0
    with pytest.raises(ValueError, match=r"needs \(6, 3\)"):
        unpixels(np.zeros((5, 3)), (2, 3, 3))
    with pytest.raises(ValueError, match="one image"):
        pixels(np.zeros((2, 4, 4, 3)))


def test_pixels_feed_a_coupling():
    from sbflow import couple

    small = PHOTO[:8, :8]
    c = couple(pixels(small), pixels(255 - small), method="exact")
    assert c.n == c.m == 64
