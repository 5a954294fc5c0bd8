"""Verifying libtrust pretty-JWS signatures and recovering the signed payload (§2.11)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from moorage.domain.errors import ManifestError
from moorage.domain.manifests._fields import fail, is_int, load_object
from moorage.domain.manifests.jws import b64url_decode, libtrust_key_id
from moorage.domain.manifests.model import ManifestUnverifiedError

if TYPE_CHECKING:
    from moorage.domain.manifests.jws import PublicKey

_EC_ALGS: dict[str, tuple[str, hashes.HashAlgorithm]] = {
    "ES256": ("secp256r1", hashes.SHA256()),
    "ES384": ("secp384r1", hashes.SHA384()),
    "ES512": ("secp521r1", hashes.SHA512()),
}
_RSA_ALGS: dict[str, hashes.HashAlgorithm] = {
    "RS256": hashes.SHA256(),
    "RS384": hashes.SHA384(),
    "RS512": hashes.SHA512(),
}
_JWK_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}


@dataclass(frozen=True, slots=True)
class _Signature:
    alg: str
    key: PublicKey
    signature: bytes
    protected: str
    format_length: int
    format_tail: bytes


def _int_from_b64url(value: object, what: str) -> int:
    return int.from_bytes(b64url_decode(value, what), "big")


def _key_from_jwk(jwk: object) -> PublicKey:
    if not isinstance(jwk, dict):
        fail("signature 'jwk' must be an object")
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            crv = jwk.get("crv")
            curve = _JWK_CURVES.get(crv) if isinstance(crv, str) else None
            if curve is None:
                fail(f"unsupported JWK curve {crv!r}")
            x = _int_from_b64url(jwk.get("x"), "JWK x")
            y = _int_from_b64url(jwk.get("y"), "JWK y")
            return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        if kty == "RSA":
            n = _int_from_b64url(jwk.get("n"), "JWK n")
            e = _int_from_b64url(jwk.get("e"), "JWK e")
            return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        if isinstance(exc, ManifestError):
            raise
        # The library's text names its internals: say it in our words.
        raise ManifestError(f"signature 'jwk' is not a valid {kty} public key") from None
    fail(f"unsupported JWK key type {kty!r}")


def _key_from_x5c(chain: object) -> PublicKey:
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        fail("signature 'x5c' must be a non-empty array of strings")
    try:
        der = base64.b64decode(chain[0], validate=True)
        key = x509.load_der_x509_certificate(der).public_key()
    except (binascii.Error, ValueError):
        raise ManifestError("signature 'x5c' is not a valid DER certificate") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        fail("x5c certificate key must be EC or RSA")
    return key


def _read_signature(index: int, block: object) -> _Signature:
    where = f"signatures[{index}]"
    if not isinstance(block, dict):
        fail(f"{where} must be an object")
    header = block.get("header")
    if not isinstance(header, dict):
        fail(f"{where}: 'header' must be an object")
    alg = header.get("alg")
    if alg not in _EC_ALGS and alg not in _RSA_ALGS:
        fail(f"{where}: unsupported signature algorithm {alg!r}")
    if "jwk" in header:
        key = _key_from_jwk(header["jwk"])
    elif "x5c" in header:
        key = _key_from_x5c(header["x5c"])
    else:
        fail(f"{where}: header carries neither 'jwk' nor 'x5c'")
    protected = block.get("protected")
    if not isinstance(protected, str):
        fail(f"{where}: 'protected' must be a string")
    protected_header = load_object(b64url_decode(protected, f"{where} protected"), "protected")
    length = protected_header.get("formatLength")
    if not is_int(length) or length <= 0:
        fail(f"{where}: 'formatLength' must be a positive integer")
    tail = b64url_decode(protected_header.get("formatTail"), f"{where} formatTail")
    return _Signature(
        alg=str(alg),
        key=key,
        signature=b64url_decode(block.get("signature"), f"{where} signature"),
        protected=protected,
        format_length=length,
        format_tail=tail,
    )


def _verify(sig: _Signature, signing_input: bytes) -> None:
    key = sig.key
    try:
        if sig.alg in _EC_ALGS:
            curve_name, hash_algorithm = _EC_ALGS[sig.alg]
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != curve_name:
                raise ManifestUnverifiedError(f"{sig.alg} needs a {curve_name} key")
            length = (key.curve.key_size + 7) // 8
            if len(sig.signature) != 2 * length:
                raise ManifestUnverifiedError("ECDSA signature has the wrong length")
            r = int.from_bytes(sig.signature[:length], "big")
            s = int.from_bytes(sig.signature[length:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_algorithm))
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                raise ManifestUnverifiedError(f"{sig.alg} needs an RSA key")
            key.verify(sig.signature, signing_input, padding.PKCS1v15(), _RSA_ALGS[sig.alg])
    except InvalidSignature as exc:
        raise ManifestUnverifiedError("manifest signature does not verify") from exc


def verify_signed_body(
    raw: bytes, body: dict[str, Any], *, max_signatures: int
) -> tuple[bytes, tuple[str, ...]]:
    """Check every signature of a signed schema1 body, refusing more than
    ``max_signatures`` of them before reading any (each costs a key and a verification).

    Returns the unsigned payload and the signers' libtrust key ids. Malformed signature
    blocks raise ``ManifestError``; a signature that fails to verify raises
    ``ManifestUnverifiedError``. The payload must equal the body minus ``signatures``,
    so nothing outside the signed bytes can change what the manifest says.
    """
    blocks = body["signatures"]
    if not isinstance(blocks, list) or not blocks:
        fail("'signatures' must be a non-empty array")
    if len(blocks) > max_signatures:
        fail(
            f"manifest carries {len(blocks)} signatures, more than schema1_signature_limit"
            f" ({max_signatures})"
        )
    signatures = [_read_signature(index, block) for index, block in enumerate(blocks)]
    first = signatures[0]
    for sig in signatures[1:]:
        if (sig.format_length, sig.format_tail) != (first.format_length, first.format_tail):
            fail("signatures disagree on the payload format")
    if first.format_length > len(raw):
        fail("'formatLength' is past the end of the manifest")
    payload = raw[: first.format_length] + first.format_tail
    signed_body = load_object(payload, "signed payload")
    unsigned_body = {key: value for key, value in body.items() if key != "signatures"}
    if signed_body != unsigned_body or json.dumps(signed_body) != json.dumps(unsigned_body):
        fail("manifest body differs from its signed payload")
    encoded_payload = base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")
    for sig in signatures:
        _verify(sig, f"{sig.protected}.{encoded_payload}".encode("ascii"))
    return payload, tuple(libtrust_key_id(sig.key) for sig in signatures)
