"""PieceHasher against a straightforward reference, with resumption between random chunks."""

from __future__ import annotations

import hashlib
import random

import pytest

from moorage.hashing import InvalidHashStateError, PieceHasher, ResumableHasher

KIB = 1 << 10


def reference_pieces(data: bytes, piece_length: int) -> bytes:
    return b"".join(
        hashlib.sha1(data[i : i + piece_length]).digest() for i in range(0, len(data), piece_length)
    )


def _sizes_for(piece_length: int) -> list[int]:
    sizes = {0, 1, piece_length - 1, piece_length, piece_length + 1, 3 * piece_length}
    sizes.add(5 * piece_length + piece_length // 2 + 1)
    if piece_length < 64 * KIB:
        sizes.add(1000 * piece_length + 3)
    return sorted(s for s in sizes if s >= 0)


CASES = [(pl, size) for pl in (1, 7, 64 * KIB, 512 * KIB) for size in _sizes_for(pl)]


def _chunks(rng: random.Random, total: int, piece_length: int) -> list[int]:
    sizes: list[int] = []
    left = total
    while left > 0:
        kind = rng.random()
        if kind < 0.1:
            size = 0
        elif kind < 0.25:
            size = 1
        elif kind < 0.45:
            size = piece_length + rng.choice([-1, 0, 1])  # straddle boundaries exactly
        else:
            size = rng.randint(1, max(2, 3 * piece_length))
        size = max(0, min(size, left))
        sizes.append(size)
        left -= size
    return sizes


@pytest.mark.parametrize(("piece_length", "size"), CASES)
def test_single_update_matches_reference(piece_length: int, size: int) -> None:
    data = random.Random(size).randbytes(size)
    hasher = PieceHasher(piece_length)
    hasher.update(data)
    expected = reference_pieces(data, piece_length)
    assert hasher.final_pieces() == expected
    complete = size // piece_length
    assert hasher.piece_hashes == expected[: 20 * complete]
    assert hasher.piece_offset == size % piece_length
    assert hasher.bytes_hashed == size
    assert (hasher.partial_state is None) == (size % piece_length == 0)


@pytest.mark.parametrize(("piece_length", "size"), CASES)
@pytest.mark.parametrize("seed", range(3))
def test_resumed_between_random_chunks(piece_length: int, size: int, seed: int) -> None:
    rng = random.Random(f"{piece_length}-{size}-{seed}")
    data = rng.randbytes(size)
    expected = reference_pieces(data, piece_length)
    saved_hashes, saved_partial = b"", None
    pos = 0
    for chunk in _chunks(rng, size, piece_length):
        # A fresh worker: only the saved bytes survive between chunks.
        hasher = PieceHasher(piece_length, saved_hashes, saved_partial)
        buf = data[pos : pos + chunk]
        inputs: list[bytes | bytearray | memoryview] = [buf, bytearray(buf), memoryview(buf)]
        hasher.update(rng.choice(inputs))
        pos += chunk
        saved_hashes, saved_partial = hasher.piece_hashes, hasher.partial_state
        assert saved_hashes == expected[: 20 * (pos // piece_length)]
        assert (saved_partial is None) == (pos % piece_length == 0)
        assert hasher.final_pieces() == reference_pieces(data[:pos], piece_length)
    final = PieceHasher(piece_length, saved_hashes, saved_partial)
    assert final.final_pieces() == expected
    assert final.bytes_hashed == size


def test_buffer_spanning_a_boundary_continues_mid_buffer() -> None:
    """The Quay bug: a chunk crossing a piece boundary must not restart from its own start."""
    data = bytes(range(10)) * 3
    hasher = PieceHasher(8)
    hasher.update(data[:5])
    hasher.update(data[5:19])  # finishes piece 0 at offset 3 of this chunk, fills piece 1
    hasher.update(data[19:])
    assert hasher.final_pieces() == reference_pieces(data, 8)


def test_final_pieces_does_not_disturb_state() -> None:
    hasher = PieceHasher(10)
    hasher.update(b"a" * 15)
    first = hasher.final_pieces()
    assert hasher.final_pieces() == first
    hasher.update(b"b" * 5)
    assert hasher.final_pieces() == reference_pieces(b"a" * 15 + b"b" * 5, 10)
    assert hasher.partial_state is None


def test_partial_state_is_a_plain_sha1_state() -> None:
    hasher = PieceHasher(100)
    hasher.update(b"z" * 130)
    state = hasher.partial_state
    assert state is not None
    sha1 = ResumableHasher.from_state(state)
    assert sha1.algorithm == "sha1"
    assert sha1.bytes_hashed == 30
    assert sha1.digest() == hashlib.sha1(b"z" * 30).digest()


def test_invalid_resume_inputs_rejected() -> None:
    with pytest.raises(ValueError, match="piece_length"):
        PieceHasher(0)
    with pytest.raises(InvalidHashStateError, match="multiple of 20"):
        PieceHasher(10, b"x" * 21)
    with pytest.raises(InvalidHashStateError):
        PieceHasher(10, b"", b"garbage")
    sha256 = ResumableHasher.new("sha256")
    sha256.update(b"abc")
    with pytest.raises(InvalidHashStateError, match="expected sha1"):
        PieceHasher(10, b"", sha256.export_state())
    too_long = ResumableHasher.new("sha1")
    too_long.update(b"x" * 10)
    with pytest.raises(InvalidHashStateError, match="piece length is 10"):
        PieceHasher(10, b"", too_long.export_state())


def test_empty_partial_state_means_boundary() -> None:
    empty = ResumableHasher.new("sha1").export_state()
    hasher = PieceHasher(4, b"", empty)
    assert hasher.partial_state is None
    hasher.update(b"abcdef")
    assert hasher.final_pieces() == reference_pieces(b"abcdef", 4)
