"""libtrust-style JSON Web Signatures for Docker schema1 manifests (§2.11).

A signed schema1 body is its JSON payload with a ``"signatures"`` member spliced in
before the closing brace. Each signature's protected header records where the payload
was cut (``formatLength``) and what followed the cut (``formatTail``), so verifiers can
rebuild the exact signed payload from the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from moorage.domain.errors import ManifestError
from moorage.domain.manifests._fields import fail, load_object

# cryptography costs a server process about 7 MB and only schema1 signing needs it: it is
# imported where a key is used, never when this module is.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

    PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not _B64URL.match(text):
        fail(f"{what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ManifestError(f"{what} is not valid base64url") from exc


def jws_hash(algorithm: str) -> HashAlgorithm:
    """The hash of a JWS algorithm: SHA-256 for ES256 and RS256, and so on."""
    from cryptography.hazmat.primitives import hashes

    hashes_by_bits: dict[str, type[HashAlgorithm]] = {
        "256": hashes.SHA256,
        "384": hashes.SHA384,
        "512": hashes.SHA512,
    }
    return hashes_by_bits[algorithm[2:]]()


def _uint_bytes(value: int, length: int | None = None) -> bytes:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def libtrust_key_id(public_key: PublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32, groups of four."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


class Schema1Signer:
    """A private key that signs schema1 manifests: EC (ES256/384/512) or RSA (RS256)."""

    __slots__ = ("_key",)

    def __init__(self, private_key: PrivateKey) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            if private_key.curve.name not in _EC_ALGORITHMS:
                raise ValueError(f"unsupported EC curve {private_key.curve.name}")
        elif not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError("schema1 signing needs an EC or RSA private key")
        self._key = private_key

    @classmethod
    def generate(cls) -> Schema1Signer:
        """A fresh EC P-256 (ES256) key."""
        from cryptography.hazmat.primitives.asymmetric import ec

        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def generate_rsa(cls, key_size: int = 2048) -> Schema1Signer:
        """A fresh RSA (RS256) key."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        return cls(rsa.generate_private_key(public_exponent=65537, key_size=key_size))

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None) -> Schema1Signer:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        key = serialization.load_pem_private_key(data, password=password)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("schema1 signing needs an EC or RSA private key")
        return cls(key)

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        from cryptography.hazmat.primitives import serialization

        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def algorithm(self) -> str:
        from cryptography.hazmat.primitives.asymmetric import ec

        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return _EC_ALGORITHMS[self._key.curve.name]
        return "RS256"

    @property
    def key_id(self) -> str:
        return libtrust_key_id(self._key.public_key())

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK carrying the libtrust ``kid``."""
        from cryptography.hazmat.primitives.asymmetric import ec

        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            numbers = self._key.public_key().public_numbers()
            length = (self._key.curve.key_size + 7) // 8
            return {
                "crv": _CURVE_NAMES[self._key.curve.name],
                "kid": self.key_id,
                "kty": "EC",
                "x": b64url_encode(_uint_bytes(numbers.x, length)),
                "y": b64url_encode(_uint_bytes(numbers.y, length)),
            }
        rsa_numbers = self._key.public_key().public_numbers()
        return {
            "e": b64url_encode(_uint_bytes(rsa_numbers.e)),
            "kid": self.key_id,
            "kty": "RSA",
            "n": b64url_encode(_uint_bytes(rsa_numbers.n)),
        }

    def sign(self, signing_input: bytes) -> bytes:
        """A raw JWS signature (``r || s`` for ECDSA, PKCS#1 v1.5 for RSA)."""
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            hash_algorithm = jws_hash(_EC_ALGORITHMS[self._key.curve.name])
            der = self._key.sign(signing_input, ec.ECDSA(hash_algorithm))
            r, s = decode_dss_signature(der)
            length = (self._key.curve.key_size + 7) // 8
            return _uint_bytes(r, length) + _uint_bytes(s, length)
        return self._key.sign(signing_input, padding.PKCS1v15(), jws_hash("RS256"))


def _format_split(payload: bytes) -> int:
    """Offset where the signatures get spliced in: before the final ``}`` and its whitespace."""
    end = payload.rstrip().rfind(b"}")
    if end < 0:
        fail("payload is not a JSON object")
    cut = end
    while cut > 0 and payload[cut - 1 : cut] in (b" ", b"\t", b"\r", b"\n"):
        cut -= 1
    if payload[cut - 1 : cut] == b"{":
        fail("cannot sign an empty JSON object")
    return cut


def serialize_payload(payload: Mapping[str, Any]) -> bytes:
    """The canonical schema1 payload text: 3-space indentation, as Docker and Quay emit it."""
    return json.dumps(dict(payload), indent=3).encode("utf-8")


def sign_schema1(
    payload: Mapping[str, Any] | bytes,
    signer: Schema1Signer,
    *,
    now: datetime | None = None,
) -> bytes:
    """Sign a schema1 payload and return the pretty-JWS body.

    A mapping is serialised with :func:`serialize_payload`; bytes are signed verbatim
    (they must be a JSON object without ``signatures``). Either way the manifest digest
    is the hash of that unsigned payload, so re-signing never changes it.
    """
    if isinstance(payload, bytes | bytearray):
        data = bytes(payload)
        if "signatures" in load_object(data, "schema1 payload"):
            fail("payload already carries signatures")
    else:
        if "signatures" in payload:
            fail("payload already carries signatures")
        data = serialize_payload(payload)
    cut = _format_split(data)
    when = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    protected_header = {"formatLength": cut, "formatTail": b64url_encode(data[cut:]), "time": when}
    protected = b64url_encode(json.dumps(protected_header, separators=(",", ":")).encode())
    signing_input = f"{protected}.{b64url_encode(data)}".encode("ascii")
    block = {
        "header": {"jwk": signer.public_jwk(), "alg": signer.algorithm},
        "signature": b64url_encode(signer.sign(signing_input)),
        "protected": protected,
    }
    rendered = json.dumps([block], indent=3).replace("\n", "\n   ")
    return data[:cut] + b',\n   "signatures": ' + rendered.encode("ascii") + data[cut:]
