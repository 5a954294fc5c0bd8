"""Content digests: grammar, parsing and computing (OCI image-spec descriptor rules)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from moorage.domain.echo import echo
from moorage.domain.errors import InvalidDigestError

_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")

EMPTY_BLOB_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
# Docker's gzipped empty tar, a globally shared "throwaway" layer (32 bytes).
EMPTY_LAYER_DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
EMPTY_LAYER_BYTES = bytes.fromhex(
    "1f8b080000096e8800ff621805a360148c5800080000ffff2eafb5ef00040000"
)


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated digest of an algorithm we can verify (sha256 or sha512)."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse ``alg:hex``; upper-case hex and unknown algorithms are refused."""
        if not isinstance(value, str) or len(value) > 256 or not _GRAMMAR.match(value):
            raise InvalidDigestError(f"malformed digest: {echo(value)}")
        algorithm, encoded = value.split(":", 1)
        expected = _HEX_LENGTHS.get(algorithm)
        if expected is None:
            raise InvalidDigestError(f"unsupported digest algorithm: {echo(algorithm)}")
        if len(encoded) != expected or not _HEX.match(encoded):
            raise InvalidDigestError(f"malformed {algorithm} digest: {echo(value)}")
        return cls(algorithm, encoded)

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def is_valid_digest(value: str) -> bool:
    try:
        Digest.parse(value)
    except InvalidDigestError:
        return False
    return True


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    if algorithm not in _HEX_LENGTHS:
        raise InvalidDigestError(f"unsupported digest algorithm: {echo(algorithm)}")
    return f"{algorithm}:" + hashlib.new(algorithm, data).hexdigest()
