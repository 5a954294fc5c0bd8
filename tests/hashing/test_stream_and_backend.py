"""digest_stream and libcrypto backend discovery/failure modes."""

from __future__ import annotations

import hashlib
import io
import random
import sys

import pytest

from moorage.hashing import (
    HashingUnavailableError,
    PieceHasher,
    ResumableHasher,
    UnsupportedAlgorithmError,
    _libcrypto,
    backend_description,
    digest_stream,
)


class _ReadOnly:
    """A file-like object with ``read`` but no ``readinto``."""

    def __init__(self, data: bytes) -> None:
        self._io = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._io.read(min(size, 1000) if size > 0 else size)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "sha1"])
@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * (1 << 20) + 5])
def test_digest_stream(algorithm: str, size: int) -> None:
    data = random.Random(size).randbytes(size)
    expected = hashlib.new(algorithm, data).hexdigest()
    assert digest_stream(io.BytesIO(data), algorithm) == expected
    assert digest_stream(io.BytesIO(data), algorithm, chunk_size=4096) == expected
    assert digest_stream(_ReadOnly(data), algorithm, chunk_size=4096) == expected


def test_digest_stream_real_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "blob"
    path.write_bytes(b"hello" * 100_000)
    with path.open("rb") as f:
        assert digest_stream(f, "sha256") == hashlib.sha256(b"hello" * 100_000).hexdigest()


def test_digest_stream_rejects_bad_arguments() -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        digest_stream(io.BytesIO(b""), "md5")
    with pytest.raises(ValueError, match="chunk_size"):
        digest_stream(io.BytesIO(b""), "sha256", chunk_size=0)


def test_backend_loaded_and_validated() -> None:
    backend = _libcrypto.BACKEND
    assert backend is not None, _libcrypto.BACKEND_ERROR
    assert {name: spec.ctx_size for name, spec in backend.specs.items()} == {
        "sha1": 96,
        "sha256": 112,
        "sha512": 216,
    }
    assert "unavailable" not in backend_description()
    for spec in backend.specs.values():
        _libcrypto._self_test(spec)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc/self/maps")
def test_finds_the_libcrypto_hashlib_uses() -> None:
    paths = _libcrypto._hashlib_libcrypto()
    assert paths
    assert all("libcrypto" in p for p in paths)


def test_self_test_rejects_a_wrong_struct_size() -> None:
    backend = _libcrypto.BACKEND
    assert backend is not None
    from dataclasses import replace

    too_small = replace(backend.specs["sha512"], ctx_size=200)
    with pytest.raises(RuntimeError, match="larger than"):
        _libcrypto._self_test(too_small)
    too_big = replace(backend.specs["sha256"], ctx_size=120, num_offset=112)
    with pytest.raises(RuntimeError, match="layout"):
        _libcrypto._self_test(too_big)


def test_unavailable_backend_raises_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    state = ResumableHasher.new("sha1").export_state()
    monkeypatch.setattr(_libcrypto, "BACKEND", None)
    monkeypatch.setattr(_libcrypto, "BACKEND_ERROR", "libcrypto not found")
    for build in (
        lambda: ResumableHasher.new("sha256"),
        lambda: ResumableHasher.from_state(state),
        lambda: PieceHasher(1024),
    ):
        with pytest.raises(HashingUnavailableError, match="libcrypto not found"):
            build()
    assert backend_description().startswith("unavailable")
    # digest_stream only needs hashlib.
    assert digest_stream(io.BytesIO(b"abc"), "sha1") == hashlib.sha1(b"abc").hexdigest()
