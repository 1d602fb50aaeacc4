"""The inference policy: threads restored, chunks equal the whole, caller's types, progress."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import sbflow._inference as inf


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_threads_pinned_and_restored(two_threads):
    with inf.inference_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_threads_restored_after_exception(two_threads):
    with pytest.raises(RuntimeError, match="boom"):
        with inf.inference_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_threads_restored_when_work_changes_them(two_threads):
    with inf.inference_threads(1):
        torch.set_num_threads(3)  # something inside changed the setting
    assert torch.get_num_threads() == 2


def test_threads_left_alone_with_none_or_off_cpu(two_threads):
    with inf.inference_threads(None):
        assert torch.get_num_threads() == 2
    with inf.inference_threads(1, device="meta"):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_threads_reject_bad_counts(bad, two_threads):
    with pytest.raises(ValueError, match="num_threads"):
        with inf.inference_threads(bad):
            pass
    assert torch.get_num_threads() == 2


def _rowwise(x: torch.Tensor) -> torch.Tensor:
    w = torch.linspace(-1.0, 1.0, x.shape[1] * 4, dtype=x.dtype).reshape(x.shape[1], 4)
    return torch.tanh(x @ w)


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 1000])
def test_chunked_equals_whole(chunk_size):
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = inf.map_chunks(_rowwise, x, chunk_size=chunk_size, progress=False)
    torch.testing.assert_close(out, _rowwise(x), rtol=0, atol=1e-15)


def test_chunked_trajectories_concatenate_along_out_dim():
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))

    def traj(c: torch.Tensor) -> torch.Tensor:
        return torch.stack([c, 2 * c, 3 * c])  # (3, m, 2)

    out = inf.map_chunks(traj, x, chunk_size=8, progress=False, out_dim=1)
    assert out.shape == (3, 50, 2)
    torch.testing.assert_close(out, traj(x))


def test_chunks_called_in_order_with_bounded_size():
    sizes = []

    def fn(c):
        sizes.append(c.shape[0])
        return c

    x = torch.arange(23.0).reshape(23, 1)
    assert inf.map_chunks(fn, x, chunk_size=5, progress=False).equal(x)
    assert sizes == [5, 5, 5, 5, 3]


def test_map_chunks_rejects_bad_input():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="chunk_size"):
        inf.map_chunks(lambda c: c, x, chunk_size=0)
    with pytest.raises(ValueError, match="out_dim"):
        inf.map_chunks(lambda c: c[:1], x, chunk_size=2, progress=False)
    with pytest.raises(TypeError, match="progress"):
        inf.map_chunks(lambda c: c, x, progress="yes")


def test_default_chunk_bounds_memory():
    assert inf.default_chunk_size(torch.zeros(5, 2)) == 16_384
    images = torch.zeros(5, 3, 64, 64)
    assert inf.default_chunk_size(images) * images[0].numel() <= 2**22


def test_progress_off_when_not_interactive(capsys):
    x = torch.zeros(40, 2)
    inf.map_chunks(lambda c: c, x, chunk_size=4, desc="transport")  # progress=None: auto
    assert capsys.readouterr().err == ""
    inf.map_chunks(lambda c: c, x, chunk_size=4, progress=True, desc="transport")
    assert "transport" in capsys.readouterr().err


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_auto_on_interactive_terminal(monkeypatch):
    fake = _FakeTTY()
    monkeypatch.setattr("sys.stderr", fake)
    monkeypatch.setattr(inf, "_PROGRESS_DELAY_S", 0.0)
    inf.map_chunks(lambda c: c, torch.zeros(40, 2), chunk_size=4, desc="transport")
    assert "transport" in fake.getvalue()
    fake.truncate(0)
    inf.map_chunks(lambda c: c, torch.zeros(40, 2), chunk_size=4, progress=False)
    assert fake.getvalue().strip("\x00") == ""


def test_numpy_in_numpy_out():
    result = torch.ones(3, 2, dtype=torch.float32)
    for dtype in (np.float32, np.float64):
        out = inf.to_caller(result, np.zeros((3, 2), dtype=dtype))
        assert isinstance(out, np.ndarray) and out.dtype == dtype
        np.testing.assert_array_equal(out, np.ones((3, 2)))
    out = inf.to_caller(result, np.zeros((3, 2), dtype=np.uint8))  # integer pixels: float out
    assert isinstance(out, np.ndarray) and out.dtype == np.float32


def test_lists_give_numpy_and_tensors_keep_dtype_and_device():
    result = torch.full((2, 2), 0.5, dtype=torch.float32, requires_grad=True) * 1
    out = inf.to_caller(result, [[0.0, 1.0], [2.0, 3.0]])
    assert isinstance(out, np.ndarray) and out.tolist() == [[0.5, 0.5], [0.5, 0.5]]
    like = torch.zeros(2, 2, dtype=torch.float64)
    out = inf.to_caller(result, like)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert out.device == like.device
    assert inf.to_caller(result, torch.zeros(2, 2, dtype=torch.uint8)).dtype == torch.float32
    assert inf.to_caller(result.to(torch.bfloat16), np.zeros(2)).dtype == np.float64


def test_clip_to_observed_range():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(200, 2, 3, generator=g) * torch.tensor([1.0, 16.0, 5.0])
    low, high = inf.data_range(train)
    assert low.shape == high.shape == (2, 3)
    x = 40 * torch.randn(50, 2, 3, generator=g)
    clipped = inf.clip_to_range(x, low, high)
    assert bool((clipped >= low).all() and (clipped <= high).all())
    inside = (x >= low) & (x <= high)
    assert clipped[inside].equal(x[inside])  # values already in range are untouched
    traj = torch.stack([x, x])  # (n_times, n, *dims) broadcasts too
    assert inf.clip_to_range(traj, low, high).equal(torch.stack([clipped, clipped]))


def test_clip_rejects_bad_bounds():
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="low"):
        inf.clip_to_range(x, torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match="low exceeds high"):
        inf.clip_to_range(x, 1.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        inf.data_range(torch.zeros(3))


# --- the policy as the Bridge applies it ----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bridge():
    import sbflow

    return sbflow.fit(
        "8gaussians", "moons", steps=10, hidden=8, depth=1, batch_size=32, progress=False
    )


def _record_threads(bridge, seen: list[int], fail: bool = False):
    def hook(module, inputs):
        seen.append(torch.get_num_threads())
        if fail:
            raise RuntimeError("model failed on purpose")

    return bridge.model.register_forward_pre_hook(hook)


def test_bridge_runs_on_one_thread_and_restores(tiny_bridge, two_threads):
    x0 = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    seen: list[int] = []
    handle = _record_threads(tiny_bridge, seen)
    try:
        out = tiny_bridge.transport(x0, steps=4)
        assert torch.get_num_threads() == 2
        metrics = tiny_bridge.evaluate(x0, x0 + 1, n_times=5)
        assert torch.get_num_threads() == 2
    finally:
        handle.remove()
    assert seen and set(seen) == {1}
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (64, 2)
    assert np.isfinite(metrics["w2"])


def test_bridge_restores_threads_when_the_model_raises(tiny_bridge, two_threads):
    handle = _record_threads(tiny_bridge, [], fail=True)
    try:
        with pytest.raises(RuntimeError, match="on purpose"):
            tiny_bridge.transport(torch.zeros(8, 2), steps=2)
    finally:
        handle.remove()
    assert torch.get_num_threads() == 2
