"""Checkpoint and bridge files: a damaged file never loads as something else.

``read_state`` either returns exactly what ``write_state`` stored or raises one ``ValueError``
naming the file: for any flipped byte, a truncation, an empty or foreign file, a pickle that
would need code, non-finite weights, or a payload whose SHA-256 no longer matches.
"""

from __future__ import annotations

import math
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from sbflow.training.checkpoint import (
    CHECKSUM_KEY,
    check_finite_state,
    read_state,
    state_digest,
    write_state,
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _state() -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    return {
        "format": "test-1",
        "model": {"w": torch.randn(16, 8, generator=g), "b": torch.randn(8, generator=g)},
        "rng": torch.randint(0, 255, (40,), dtype=torch.uint8, generator=g),
        "step": 7,
        "history": [(1, 0.5), (2, 0.25)],
        "config": {"lr": 1e-3, "name": "x", "none": None, "flag": True},
    }


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    return type(a) is type(b) and a == b


def _data_offset(path: Path, name_part: str) -> tuple[int, int]:
    """(offset, size) of the stored bytes of the first zip entry whose name has ``name_part``."""
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if name_part in i.filename)
    off = info.header_offset
    start = off + 30 + int.from_bytes(raw[off + 26 : off + 28], "little")
    start += int.from_bytes(raw[off + 28 : off + 30], "little")
    return start, info.file_size


@pytest.fixture(scope="module")
def written() -> tuple[Path, bytes]:
    directory = Path(tempfile.mkdtemp())
    path = write_state(directory / "state.pt", _state())
    return path, path.read_bytes()


def test_round_trip_drops_the_digest_and_keeps_everything_else(
    written: tuple[Path, bytes],
) -> None:
    path, _ = written
    state = read_state(path, "checkpoint")
    assert CHECKSUM_KEY not in state
    assert _equal(state, _state())
    raw = torch.load(path, weights_only=True)
    assert raw[CHECKSUM_KEY] == state_digest(_state())


@given(where=st.floats(0.0, 1.0, exclude_max=True), mask=st.integers(1, 255))
def test_any_flipped_byte_is_caught_or_harmless(
    written: tuple[Path, bytes], where: float, mask: int
) -> None:
    _, raw = written
    damaged = bytearray(raw)
    k = int(where * len(raw))
    damaged[k] ^= mask
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "state.pt"
        path.write_bytes(bytes(damaged))
        try:
            state = read_state(path, "checkpoint")
        except ValueError as err:
            assert str(path) in str(err)
        else:  # a flip in zip metadata that no reader uses
            assert _equal(state, _state())


@pytest.mark.parametrize("digest", [True, False], ids=["write_state", "plain torch.save"])
def test_flipped_weight_byte_is_a_crc_error(tmp_path: Path, digest: bool) -> None:
    # Issue 13 #4: torch's own reader ignores the CRC and loaded such a file silently.
    path = tmp_path / "b.pt"
    if digest:
        write_state(path, _state())
    else:
        torch.save(_state(), path)
    start, size = _data_offset(path, "/data/")
    raw = bytearray(path.read_bytes())
    raw[start + size // 2] ^= 0x40
    path.write_bytes(bytes(raw))
    torch.load(path, weights_only=True)  # what used to happen: no error at all
    with pytest.raises(ValueError, match=r"b\.pt is a corrupt checkpoint: .*fails its CRC check"):
        read_state(path, "checkpoint")


def test_content_that_no_longer_matches_its_digest_is_refused(tmp_path: Path) -> None:
    path = write_state(tmp_path / "s.pt", _state())
    stored = torch.load(path, weights_only=True)
    stored["model"]["w"][0, 0] += 1.0  # a rewritten file: the zip CRCs are consistent again
    torch.save(stored, path)
    with pytest.raises(ValueError, match=r"s\.pt is a corrupt bridge file: .*SHA-256"):
        read_state(path, "bridge file")


def test_files_from_before_digests_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save(_state(), path)
    assert _equal(read_state(path, "checkpoint"), _state())


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"", r"is empty \(0 bytes\)"),
        (bytes(range(256)) * 8, "not a zip archive"),
        ("truncated", "not a zip archive|damaged"),
        ("pickled code", "never unpickles code"),
        ("a list", r"found list"),
    ],
)
def test_unreadable_files_get_one_clear_message(tmp_path: Path, content: Any, expect: str) -> None:
    path = tmp_path / "f.pt"
    if content == "truncated":
        write_state(path, _state())
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif content == "pickled code":
        torch.save({"x": math.floor}, path)
    elif content == "a list":
        torch.save([1, 2], path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=expect) as info:
        read_state(path, "bridge file")
    message = str(info.value)
    assert str(path) in message
    assert "weights_only" not in message and "Errno" not in message
    assert "\n" not in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_on_load(tmp_path: Path, bad: float) -> None:
    state = _state()
    state["model"]["b"][3] = bad
    path = write_state(tmp_path / "nan.pt", state)
    with pytest.raises(ValueError, match=r"entry model\.b holds 1 NaN/infinite value"):
        read_state(path, "bridge file")
    with pytest.raises(ValueError, match=r"entry \[1\]\.w"):
        check_finite_state([1, {"w": torch.tensor([bad])}], "x")
    check_finite_state({"n": torch.tensor([1, 2]), "f": math.inf}, "ints and plain floats pass")


def test_write_state_rejects_what_cannot_be_read_back(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"entry opts\.fn is a builtin_function_or_method"):
        write_state(tmp_path / "x.pt", {"opts": {"fn": math.floor}})
    with pytest.raises(ValueError, match="reserved key"):
        write_state(tmp_path / "x.pt", {CHECKSUM_KEY: "0"})
    with pytest.raises(TypeError, match="must be a dict"):
        write_state(tmp_path / "x.pt", [1])  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_digest_sees_dtype_shape_order_and_container_type() -> None:
    base = state_digest({"a": torch.zeros(2, 3), "b": [1, 2]})
    variants = [
        {"a": torch.zeros(3, 2), "b": [1, 2]},
        {"a": torch.zeros(2, 3, dtype=torch.float64), "b": [1, 2]},
        {"b": [1, 2], "a": torch.zeros(2, 3)},
        {"a": torch.zeros(2, 3), "b": (1, 2)},
        {"a": torch.zeros(2, 3), "b": [1, 2.0]},
        {"a": torch.zeros(2, 3), "b": ["1", 2]},
    ]
    assert len({base, *map(state_digest, variants)}) == 1 + len(variants)
    assert state_digest({"a": torch.zeros(4)[::2]}) == state_digest({"a": torch.zeros(2)})
