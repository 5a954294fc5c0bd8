"""ResumableHasher against hashlib, with state round-trips through bytes between every chunk."""

from __future__ import annotations

import array
import hashlib
import random
import struct

import pytest

from moorage.hashing import (
    SUPPORTED_ALGORITHMS,
    InvalidHashStateError,
    ResumableHasher,
    UnsupportedAlgorithmError,
)
from moorage.hashing import resumable as resumable_module

MIB = 1 << 20
CTX_SIZES = {"sha1": 96, "sha256": 112, "sha512": 216}


def _chunk_sizes(rng: random.Random, total: int) -> list[int]:
    sizes: list[int] = []
    left = total
    while left > 0:
        kind = rng.random()
        if kind < 0.15:
            size = 0
        elif kind < 0.35:
            size = 1
        elif kind < 0.55:
            size = rng.randint(2, 200)  # around block boundaries
        elif kind < 0.9:
            size = rng.randint(1, 70_000)
        else:
            size = rng.randint(MIB + 1, 2 * MIB)
        size = min(size, left)
        sizes.append(size)
        left -= size
    sizes.append(0)
    return sizes


def _as_input(rng: random.Random, data: bytes) -> bytes | bytearray | memoryview:
    kind = rng.randrange(4)
    if kind == 0:
        return data
    if kind == 1:
        return bytearray(data)
    if kind == 2:  # read-only slice of a larger bytes object
        return memoryview(b"xx" + data + b"yy")[2 : 2 + len(data)]
    return memoryview(bytearray(data))


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
@pytest.mark.parametrize("seed", range(12))
def test_random_chunks_with_resume_between_every_chunk(algorithm: str, seed: int) -> None:
    rng = random.Random(f"{algorithm}-{seed}")
    total = rng.choice([0, 1, 63, 64, 65, 127, 128, 129, 1000, 100_000, 3 * MIB + 17])
    data = rng.randbytes(total)
    reference = hashlib.new(algorithm)
    hasher = ResumableHasher.new(algorithm)
    pos = 0
    for size in _chunk_sizes(rng, total):
        piece = data[pos : pos + size]
        pos += size
        hasher.update(_as_input(rng, piece))
        reference.update(piece)
        state = hasher.export_state()
        assert isinstance(state, bytes)
        hasher = ResumableHasher.from_state(bytes(bytearray(state)))
        assert hasher.algorithm == algorithm
        assert hasher.bytes_hashed == pos
        if rng.random() < 0.3:
            assert hasher.hexdigest() == reference.hexdigest()
    assert pos == total
    assert hasher.digest() == hashlib.new(algorithm, data).digest()
    assert hasher.hexdigest() == hashlib.new(algorithm, data).hexdigest()


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_known_vectors(algorithm: str) -> None:
    hasher = ResumableHasher.new(algorithm)
    assert hasher.hexdigest() == hashlib.new(algorithm).hexdigest()
    hasher.update(b"abc")
    assert hasher.hexdigest() == hashlib.new(algorithm, b"abc").hexdigest()
    assert hasher.digest_size == hashlib.new(algorithm).digest_size
    assert hasher.block_size == hashlib.new(algorithm).block_size


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_digest_does_not_disturb_state(algorithm: str) -> None:
    hasher = ResumableHasher.new(algorithm)
    reference = hashlib.new(algorithm)
    for i in range(300):
        chunk = bytes([i % 256]) * (i % 70)
        hasher.update(chunk)
        reference.update(chunk)
        before = hasher.export_state()
        assert hasher.digest() == reference.digest()
        assert hasher.hexdigest() == reference.hexdigest()
        assert hasher.export_state() == before


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_copy_is_independent(algorithm: str) -> None:
    hasher = ResumableHasher.new(algorithm)
    hasher.update(b"a" * 100)
    twin = hasher.copy()
    twin.update(b"b")
    hasher.update(b"c")
    assert twin.hexdigest() == hashlib.new(algorithm, b"a" * 100 + b"b").hexdigest()
    assert hasher.hexdigest() == hashlib.new(algorithm, b"a" * 100 + b"c").hexdigest()


def test_other_buffer_shapes() -> None:
    data = bytes(range(256)) * 10
    hasher = ResumableHasher.new("sha256")
    ints = array.array("I", range(100))
    hasher.update(memoryview(ints))  # multi-byte items
    hasher.update(memoryview(data)[::3])  # non-contiguous: copied once
    hasher.update(memoryview(b""))
    hasher.update(bytearray())
    expected = hashlib.sha256(ints.tobytes() + data[::3]).hexdigest()
    assert hasher.hexdigest() == expected


def test_update_does_not_keep_bytearray_locked() -> None:
    buf = bytearray(b"abc")
    hasher = ResumableHasher.new("sha1")
    hasher.update(buf)
    hasher.update(memoryview(buf))
    buf.extend(b"def")  # would raise BufferError if an export were still held
    assert hasher.hexdigest() == hashlib.sha1(b"abcabc").hexdigest()


def test_algorithm_names() -> None:
    assert ResumableHasher.new("SHA256").algorithm == "sha256"
    for bad in ("md5", "sha224", "sha384", "", "sha-256"):
        with pytest.raises(UnsupportedAlgorithmError):
            ResumableHasher.new(bad)


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_state_layout(algorithm: str) -> None:
    hasher = ResumableHasher.new(algorithm)
    hasher.update(b"x" * 1000)
    state = hasher.export_state()
    name = algorithm.encode()
    assert state[:4] == b"MRHS"
    assert state[4] == 1
    assert state[6] == len(name)
    assert state[7 : 7 + len(name)] == name
    (size,) = struct.unpack_from("<H", state, 7 + len(name))
    assert size == CTX_SIZES[algorithm]
    assert len(state) == 7 + len(name) + 2 + size + 8


# --- rejection of corrupted / foreign states --------------------------------------------------


def _state(algorithm: str = "sha256", length: int = 1000) -> bytes:
    hasher = ResumableHasher.new(algorithm)
    hasher.update(bytes(length))
    return hasher.export_state()


def _reseal(body: bytes) -> bytes:
    """A forged state with a valid checksum, to reach the checks behind it."""
    return body + resumable_module._checksum(body)


def _fields(state: bytes) -> tuple[int, bytes, int]:
    name_len = state[6]
    size_at = 7 + name_len
    return name_len, state[7:size_at], size_at


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_every_single_byte_corruption_is_rejected(algorithm: str) -> None:
    state = _state(algorithm)
    for i in range(len(state)):
        for flip in (0x01, 0x80):
            corrupted = bytearray(state)
            corrupted[i] ^= flip
            with pytest.raises(InvalidHashStateError):
                ResumableHasher.from_state(bytes(corrupted))


@pytest.mark.parametrize("cut", [0, 1, 3, 4, 7, 10, 50, -9, -1])
def test_truncated_or_extended_state_rejected(cut: int) -> None:
    state = _state()
    with pytest.raises(InvalidHashStateError):
        ResumableHasher.from_state(state[:cut])
    with pytest.raises(InvalidHashStateError):
        ResumableHasher.from_state(state + b"\0")


def test_foreign_blobs_rejected() -> None:
    import pickle

    for blob in (b"", b"not a state", pickle.dumps({"h": 1}), hashlib.sha256(b"x").digest()):
        with pytest.raises(InvalidHashStateError, match="magic"):
            ResumableHasher.from_state(blob)


def test_unknown_version_rejected() -> None:
    body = bytearray(_state()[:-8])
    body[4] = 2
    with pytest.raises(InvalidHashStateError, match="version 2"):
        ResumableHasher.from_state(_reseal(bytes(body)))


def test_other_byte_order_rejected() -> None:
    body = bytearray(_state()[:-8])
    body[5] = 3 - body[5]
    with pytest.raises(InvalidHashStateError, match="byte order"):
        ResumableHasher.from_state(_reseal(bytes(body)))


def test_unknown_algorithm_rejected() -> None:
    body = _state("sha256")[:-8].replace(b"sha256", b"sha384", 1)
    with pytest.raises(InvalidHashStateError, match="sha384"):
        ResumableHasher.from_state(_reseal(body))


def test_struct_size_from_another_build_rejected() -> None:
    state = _state("sha512")
    _, _, size_at = _fields(state)
    ctx = state[size_at + 2 : -8]
    for ctx_size in (len(ctx) - 8, len(ctx) + 8):  # e.g. a 32-bit build / other library
        forged = ctx[:ctx_size].ljust(ctx_size, b"\0")
        body = state[:size_at] + struct.pack("<H", ctx_size) + forged
        with pytest.raises(InvalidHashStateError, match="incompatible"):
            ResumableHasher.from_state(_reseal(body))


def test_algorithm_swapped_with_same_size_context_rejected() -> None:
    # A sha1 context relabelled as sha256 has the wrong size; a sha256 one relabelled as sha1 too.
    sha1 = _state("sha1")[:-8].replace(b"\x04sha1", b"\x06sha256", 1)
    with pytest.raises(InvalidHashStateError):
        ResumableHasher.from_state(_reseal(sha1))


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_inconsistent_context_fields_rejected(algorithm: str) -> None:
    state = _state(algorithm, length=1000)
    _, _, size_at = _fields(state)
    ctx_at = size_at + 2
    num_offset = {"sha1": 92, "sha256": 104, "sha512": 208}[algorithm]
    body = bytearray(state[:-8])
    body[ctx_at + num_offset] ^= 0x01  # buffered count no longer matches the length counters
    with pytest.raises(InvalidHashStateError, match="inconsistent"):
        ResumableHasher.from_state(_reseal(bytes(body)))


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_fixed_edge_chunk_sequence(algorithm: str) -> None:
    """Empty, 1-byte, block-straddling and >1 MiB chunks, resumed through bytes after each."""
    sizes = [0, 1, 0, 63, 1, 2 * MIB + 3, 1, 0, 127, 129, MIB + 1, 1, 1, 0, 5 * MIB // 2]
    data = random.Random(algorithm).randbytes(sum(sizes))
    hasher = ResumableHasher.new(algorithm)
    pos = 0
    for size in sizes:
        hasher.update(memoryview(data)[pos : pos + size])
        pos += size
        hasher = ResumableHasher.from_state(hasher.export_state())
        assert hasher.bytes_hashed == pos
    assert hasher.hexdigest() == hashlib.new(algorithm, data).hexdigest()
