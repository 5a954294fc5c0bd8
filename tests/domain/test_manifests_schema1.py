"""Docker schema 1: signing, verification, key ids, parsing and the V1 chain."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from moorage.domain.errors import ManifestError
from moorage.domain.manifests import (
    DOCKER_LAYER_GZIP,
    UNKNOWN_SIZE,
    ManifestUnverifiedError,
    Schema1Signer,
    V1Entry,
    build_schema1_manifest,
    libtrust_key_id,
    parse_manifest,
    sign_schema1,
)
from moorage.domain.media_types import (
    APPLICATION_JSON,
    DOCKER_SCHEMA1_MANIFEST,
    DOCKER_SCHEMA1_SIGNED_MANIFEST,
    OCI_IMAGE_MANIFEST,
)

SIGNED = DOCKER_SCHEMA1_SIGNED_MANIFEST
UNSIGNED = DOCKER_SCHEMA1_MANIFEST


@pytest.fixture(scope="module")
def ec_signer() -> Schema1Signer:
    return Schema1Signer.generate()


@pytest.fixture(scope="module")
def rsa_signer() -> Schema1Signer:
    return Schema1Signer.generate_rsa()


def hexid(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def blob(seed: str) -> str:
    return "sha256:" + hashlib.sha256(b"blob-" + seed.encode()).hexdigest()


def v1(seed: str, parent: str | None, **extra: Any) -> str:
    obj: dict[str, Any] = {"id": hexid(seed)}
    if parent is not None:
        obj["parent"] = hexid(parent)
    obj.update(extra)
    return json.dumps(obj)


def payload(**overrides: Any) -> dict[str, Any]:
    """Three layers: base, mid, top. fsLayers/history are top first, as schema1 wants."""
    body: dict[str, Any] = {
        "schemaVersion": 1,
        "name": "library/app",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": blob("top")}, {"blobSum": blob("mid")}, {"blobSum": blob("base")}],
        "history": [
            {
                "v1Compatibility": v1(
                    "top",
                    "mid",
                    created="2020-02-03T04:05:06.123456789Z",
                    author="alice",
                    comment="top layer",
                    container_config={"Cmd": ["/bin/sh", "-c", "echo hi"]},
                    Size=123,
                )
            },
            {"v1Compatibility": v1("mid", "base", throwaway=True)},
            {"v1Compatibility": v1("base", None)},
        ],
    }
    body.update(overrides)
    return body


def unsigned_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, indent=3).encode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- key ids and keys -----------------------------------------------------------------------


def test_kid_format(ec_signer: Schema1Signer, rsa_signer: Schema1Signer) -> None:
    for signer in (ec_signer, rsa_signer):
        kid = signer.key_id
        assert len(kid.replace(":", "")) == 48
        assert kid.count(":") == 11
        assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", kid)


def test_kid_is_computed_from_der_spki_independently(ec_signer: Schema1Signer) -> None:
    key = serialization.load_pem_private_key(ec_signer.to_pem(), password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert ec_signer.key_id == ":".join(encoded[i : i + 4] for i in range(0, 48, 4))


def test_pem_round_trip_keeps_the_key(ec_signer: Schema1Signer, rsa_signer: Schema1Signer) -> None:
    for signer in (ec_signer, rsa_signer):
        again = Schema1Signer.from_pem(signer.to_pem())
        assert again.key_id == signer.key_id
        assert again.algorithm == signer.algorithm
    assert ec_signer.algorithm == "ES256"
    assert rsa_signer.algorithm == "RS256"
    assert Schema1Signer.generate().key_id != ec_signer.key_id


def test_from_pem_refuses_other_key_types() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="EC or RSA"):
        Schema1Signer.from_pem(pem)


def test_jwk_contents(ec_signer: Schema1Signer, rsa_signer: Schema1Signer) -> None:
    jwk = ec_signer.public_jwk()
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["kid"] == ec_signer.key_id
    assert len(unb64url(jwk["x"])) == 32 and len(unb64url(jwk["y"])) == 32
    rsa_jwk = rsa_signer.public_jwk()
    assert rsa_jwk["kty"] == "RSA" and unb64url(rsa_jwk["e"]) == b"\x01\x00\x01"
    assert len(unb64url(rsa_jwk["n"])) == 256


# --- sign → parse round trips ---------------------------------------------------------------


@pytest.mark.parametrize("signer_name", ["ec_signer", "rsa_signer"])
def test_sign_then_parse_round_trip(signer_name: str, request: pytest.FixtureRequest) -> None:
    signer: Schema1Signer = request.getfixturevalue(signer_name)
    signed = sign_schema1(payload(), signer)
    parsed = parse_manifest(signed, SIGNED)
    expected_payload = unsigned_bytes(payload())
    assert parsed.media_type == SIGNED
    assert parsed.raw == signed
    assert parsed.digest == "sha256:" + hashlib.sha256(expected_payload).hexdigest()
    assert parsed.schema1 is not None
    assert parsed.schema1.payload == expected_payload
    assert parsed.schema1.key_ids == (signer.key_id,)
    assert parsed.schema1.signed is True
    header = json.loads(signed)["signatures"][0]["header"]
    assert header["alg"] == signer.algorithm


def test_signed_body_shape(ec_signer: Schema1Signer) -> None:
    when = datetime(2015, 4, 8, 18, 52, 59, tzinfo=UTC)
    signed = sign_schema1(payload(), ec_signer, now=when)
    body = json.loads(signed)
    assert {k: v for k, v in body.items() if k != "signatures"} == payload()
    assert signed.endswith(b"\n   ]\n}")
    protected = json.loads(unb64url(body["signatures"][0]["protected"]))
    text = unsigned_bytes(payload())
    assert protected["formatLength"] == text.rfind(b"\n}")
    assert unb64url(protected["formatTail"]) == b"\n}"
    assert protected["time"] == "2015-04-08T18:52:59Z"
    assert signed[: protected["formatLength"]] == text[: protected["formatLength"]]


def test_signing_twice_gives_other_bytes_but_same_digest(ec_signer: Schema1Signer) -> None:
    first = sign_schema1(payload(), ec_signer)
    second = sign_schema1(payload(), ec_signer)
    assert first != second
    assert parse_manifest(first, SIGNED).digest == parse_manifest(second, SIGNED).digest


def test_other_signer_gives_same_digest(
    ec_signer: Schema1Signer, rsa_signer: Schema1Signer
) -> None:
    a = parse_manifest(sign_schema1(payload(), ec_signer), SIGNED)
    b = parse_manifest(sign_schema1(payload(), rsa_signer), SIGNED)
    assert a.digest == b.digest
    assert a.schema1 is not None and b.schema1 is not None
    assert a.schema1.key_ids != b.schema1.key_ids


def test_signing_bytes_signs_them_verbatim(ec_signer: Schema1Signer) -> None:
    compact = json.dumps(payload(), separators=(",", ":")).encode()
    parsed = parse_manifest(sign_schema1(compact, ec_signer), SIGNED)
    assert parsed.digest == "sha256:" + hashlib.sha256(compact).hexdigest()


def test_p384_key_signs_es384() -> None:
    signer = Schema1Signer(ec.generate_private_key(ec.SECP384R1()))
    assert signer.algorithm == "ES384"
    parsed = parse_manifest(sign_schema1(payload(), signer), SIGNED)
    assert parsed.schema1 is not None and parsed.schema1.key_ids == (signer.key_id,)


def test_x5c_header_verifies(ec_signer: Schema1Signer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    body = json.loads(sign_schema1(payload(), Schema1Signer(key)))
    body["signatures"][0]["header"] = {
        "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()],
        "alg": "ES256",
    }
    parsed = parse_manifest(json.dumps(body, indent=3).encode(), SIGNED)
    assert parsed.schema1 is not None
    assert parsed.schema1.key_ids == (libtrust_key_id(key.public_key()),)
    # The same signature presented with another key fails verification.
    other = Schema1Signer.generate()
    body["signatures"][0]["header"]["jwk"] = other.public_jwk()
    del body["signatures"][0]["header"]["x5c"]
    with pytest.raises(ManifestUnverifiedError):
        parse_manifest(json.dumps(body, indent=3).encode(), SIGNED)


# --- tampering and malformed signatures ----------------------------------------------------


def test_tampered_signature_is_unverified(ec_signer: Schema1Signer) -> None:
    body = json.loads(sign_schema1(payload(), ec_signer))
    sig = bytearray(unb64url(body["signatures"][0]["signature"]))
    sig[5] ^= 0x01
    body["signatures"][0]["signature"] = b64url(bytes(sig))
    with pytest.raises(ManifestUnverifiedError):
        parse_manifest(json.dumps(body, indent=3).encode(), SIGNED)


def test_tampered_rsa_signature_is_unverified(rsa_signer: Schema1Signer) -> None:
    signed = sign_schema1(payload(), rsa_signer)
    body = json.loads(signed)
    sig = bytearray(unb64url(body["signatures"][0]["signature"]))
    sig[-1] ^= 0x80
    body["signatures"][0]["signature"] = b64url(bytes(sig))
    with pytest.raises(ManifestUnverifiedError):
        parse_manifest(json.dumps(body, indent=3).encode(), SIGNED)


def test_tampered_payload_is_unverified(ec_signer: Schema1Signer) -> None:
    signed = sign_schema1(payload(), ec_signer)
    tampered = signed.replace(b'"amd64"', b'"arm64"')  # same length: cut still valid
    assert tampered != signed
    with pytest.raises(ManifestUnverifiedError):
        parse_manifest(tampered, SIGNED)


def test_swapped_jwk_is_unverified(ec_signer: Schema1Signer) -> None:
    body = json.loads(sign_schema1(payload(), ec_signer))
    body["signatures"][0]["header"]["jwk"] = Schema1Signer.generate().public_jwk()
    with pytest.raises(ManifestUnverifiedError):
        parse_manifest(json.dumps(body, indent=3).encode(), SIGNED)


def test_algorithm_key_mismatch_is_unverified(ec_signer: Schema1Signer) -> None:
    body = json.loads(sign_schema1(payload(), ec_signer))
    body["signatures"][0]["header"]["alg"] = "RS256"
    with pytest.raises(ManifestUnverifiedError):
        parse_manifest(json.dumps(body, indent=3).encode(), SIGNED)


def test_content_outside_the_signed_payload_is_refused(ec_signer: Schema1Signer) -> None:
    signed = sign_schema1(payload(), ec_signer)
    smuggled = signed[:-2] + b',\n   "tag": "other"\n}'
    with pytest.raises(ManifestError):
        parse_manifest(smuggled, SIGNED)


def test_prettyjws_without_signatures_is_unverified() -> None:
    with pytest.raises(ManifestUnverifiedError):
        parse_manifest(unsigned_bytes(payload()), SIGNED)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.update(protected="!!not base64!!"),
        lambda s: s.update(protected=b64url(b"not json")),
        lambda s: s.update(protected=b64url(b'{"formatTail": "Cn0"}')),
        lambda s: s.update(signature=None),
        lambda s: s.update(header={"alg": "ES256"}),
        lambda s: s.update(header={"alg": "none", "jwk": {}}),
        lambda s: s["header"]["jwk"].update(crv="P-999"),
        lambda s: s["header"]["jwk"].update(x=b64url(b"\x01" * 32)),
    ],
)
def test_malformed_signature_blocks_are_manifest_errors(
    ec_signer: Schema1Signer, mutate: Any
) -> None:
    body = json.loads(sign_schema1(payload(), ec_signer))
    mutate(body["signatures"][0])
    with pytest.raises(ManifestError) as info:
        parse_manifest(json.dumps(body, indent=3).encode(), SIGNED)
    assert not isinstance(info.value, ManifestUnverifiedError)


def test_signatures_must_agree_on_format(ec_signer: Schema1Signer) -> None:
    body = json.loads(sign_schema1(payload(), ec_signer))
    other = dict(body["signatures"][0])
    header = json.loads(unb64url(other["protected"]))
    header["formatLength"] -= 1
    other["protected"] = b64url(json.dumps(header).encode())
    body["signatures"].append(other)
    with pytest.raises(ManifestError, match="disagree"):
        parse_manifest(json.dumps(body, indent=3).encode(), SIGNED)


# --- parsing content ------------------------------------------------------------------------


def test_unsigned_manifest_parses_with_layers_base_to_leaf() -> None:
    data = unsigned_bytes(payload())
    parsed = parse_manifest(data, UNSIGNED)
    assert parsed.media_type == UNSIGNED
    assert parsed.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert [layer.digest for layer in parsed.layers] == [blob("base"), blob("mid"), blob("top")]
    assert all(layer.media_type == DOCKER_LAYER_GZIP for layer in parsed.layers)
    assert [layer.size for layer in parsed.layers] == [UNKNOWN_SIZE, UNKNOWN_SIZE, 123]
    assert parsed.local_blob_digests == (blob("base"), blob("mid"), blob("top"))
    assert parsed.config is None and parsed.is_list is False and parsed.artifact_type is None
    info = parsed.schema1
    assert info is not None
    assert (info.name, info.tag, info.architecture) == ("library/app", "latest", "amd64")
    assert info.signed is False and info.key_ids == ()


def test_v1_entries_from_history() -> None:
    parsed = parse_manifest(unsigned_bytes(payload()), UNSIGNED)
    assert parsed.schema1 is not None
    base, mid, top = parsed.schema1.entries
    assert [base.id, mid.id, top.id] == [hexid("base"), hexid("mid"), hexid("top")]
    assert [base.parent, mid.parent, top.parent] == [None, hexid("base"), hexid("mid")]
    assert [base.blob_digest, top.blob_digest] == [blob("base"), blob("top")]
    assert top.v1_json == payload()["history"][0]["v1Compatibility"]
    assert top.created == datetime(2020, 2, 3, 4, 5, 6, 123456, tzinfo=UTC)
    assert (top.author, top.comment, top.size) == ("alice", "top layer", 123)
    assert json.loads(top.command or "") == ["/bin/sh", "-c", "echo hi"]
    assert top.command == json.dumps(["/bin/sh", "-c", "echo hi"])
    assert mid.throwaway is True and top.throwaway is False
    assert base.command is None and base.created is None and base.size is None


def test_application_json_is_treated_as_schema1(ec_signer: Schema1Signer) -> None:
    assert parse_manifest(unsigned_bytes(payload()), APPLICATION_JSON).media_type == UNSIGNED
    signed = sign_schema1(payload(), ec_signer)
    assert parse_manifest(signed, APPLICATION_JSON).media_type == SIGNED


def test_schema1_body_as_oci_manifest_is_refused() -> None:
    with pytest.raises(ManifestError, match="schemaVersion"):
        parse_manifest(unsigned_bytes(payload()), OCI_IMAGE_MANIFEST)


def test_schema2_body_as_schema1_is_refused() -> None:
    with pytest.raises(ManifestError, match="schemaVersion"):
        parse_manifest(unsigned_bytes(payload(schemaVersion=2)), UNSIGNED)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fsLayers": [{"blobSum": blob("top")}]}, "fsLayers"),
        ({"fsLayers": [], "history": []}, "at least one"),
        ({"name": None}, "name"),
        ({"tag": 3}, "tag"),
        ({"history": "nope"}, "history"),
    ],
)
def test_structural_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(unsigned_bytes(payload(**overrides)), UNSIGNED)


def test_malformed_blob_sum_is_refused() -> None:
    body = payload()
    body["fsLayers"][1]["blobSum"] = "sha256:XYZ"
    with pytest.raises(ManifestError, match="blobSum"):
        parse_manifest(unsigned_bytes(body), UNSIGNED)


@pytest.mark.parametrize(
    ("index", "v1_json", "message"),
    [
        (1, v1("mid", "other"), "parent"),  # parent is not the entry below
        (2, v1("base", "ghost"), "parent"),  # base may not have a parent
        (1, v1("base", "base"), "more than once|parent"),
        (0, json.dumps({"parent": hexid("mid")}), "id"),
        (0, json.dumps({"id": "ABC"}), "id"),
        (0, "not json", "v1Compatibility"),
        (0, json.dumps(["array"]), "v1Compatibility"),
    ],
)
def test_v1_chain_errors(index: int, v1_json: str, message: str) -> None:
    body = payload()
    body["history"][index]["v1Compatibility"] = v1_json
    with pytest.raises(ManifestError, match=message):
        parse_manifest(unsigned_bytes(body), UNSIGNED)


def test_duplicate_v1_ids_are_refused() -> None:
    body = payload(
        fsLayers=[{"blobSum": blob("a")}, {"blobSum": blob("b")}],
        history=[{"v1Compatibility": v1("x", "x")}, {"v1Compatibility": v1("x", None)}],
    )
    with pytest.raises(ManifestError, match="more than once"):
        parse_manifest(unsigned_bytes(body), UNSIGNED)


# --- building -------------------------------------------------------------------------------


def entries() -> list[V1Entry]:
    def entry(seed: str, parent: str | None) -> V1Entry:
        return V1Entry(
            id=hexid(seed),
            parent=hexid(parent) if parent else None,
            blob_digest=blob(seed),
            v1_json=v1(seed, parent),
            created=None,
            comment=None,
            command=None,
            author=None,
            throwaway=False,
            size=None,
        )

    return [entry("base", None), entry("mid", "base"), entry("top", "mid")]


def test_build_schema1_manifest_orders_top_first(ec_signer: Schema1Signer) -> None:
    signed = build_schema1_manifest("ns/repo", "v1", "arm64", entries(), ec_signer)
    body = json.loads(signed)
    assert [layer["blobSum"] for layer in body["fsLayers"]] == [
        blob("top"),
        blob("mid"),
        blob("base"),
    ]
    assert json.loads(body["history"][0]["v1Compatibility"])["id"] == hexid("top")
    parsed = parse_manifest(signed, SIGNED)
    assert parsed.schema1 is not None
    assert [e.id for e in parsed.schema1.entries] == [e.id for e in entries()]
    assert (parsed.schema1.name, parsed.schema1.tag, parsed.schema1.architecture) == (
        "ns/repo",
        "v1",
        "arm64",
    )


def test_build_unsigned_matches_signed_digest(ec_signer: Schema1Signer) -> None:
    unsigned = build_schema1_manifest("ns/repo", "v1", "amd64", entries(), None)
    signed = build_schema1_manifest("ns/repo", "v1", "amd64", entries(), ec_signer)
    assert "signatures" not in json.loads(unsigned)
    assert parse_manifest(unsigned, UNSIGNED).digest == parse_manifest(signed, SIGNED).digest


def test_build_refuses_a_broken_chain(ec_signer: Schema1Signer) -> None:
    broken = entries()
    broken.reverse()
    with pytest.raises(ManifestError, match="parent"):
        build_schema1_manifest("ns/repo", "v1", "amd64", broken, ec_signer)
    with pytest.raises(ManifestError, match="at least one"):
        build_schema1_manifest("ns/repo", "v1", "amd64", [], ec_signer)


# --- bounded work and values the database must hold (issue 11) --------------------------------


def _with_signatures(signed: bytes, count: int) -> bytes:
    body = json.loads(signed)
    body["signatures"] = body["signatures"] * count
    return json.dumps(body, indent=3).encode()


def test_too_many_signatures_are_refused_before_any_is_read(
    ec_signer: Schema1Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moorage.domain.manifests import jws_verify
    from moorage.domain.manifests.schema1 import DEFAULT_MAX_SIGNATURES

    read = jws_verify._read_signature
    calls: list[int] = []

    def counting(index: int, block: object) -> Any:
        calls.append(index)
        return read(index, block)

    monkeypatch.setattr(jws_verify, "_read_signature", counting)
    signed = sign_schema1(payload(), ec_signer)
    with pytest.raises(ManifestError, match=r"schema1_signature_limit \(16\)"):
        parse_manifest(_with_signatures(signed, DEFAULT_MAX_SIGNATURES + 1), SIGNED)
    assert calls == []  # 2,400 signatures once cost 12 s of verification
    parsed = parse_manifest(_with_signatures(signed, DEFAULT_MAX_SIGNATURES), SIGNED)
    assert len(calls) == DEFAULT_MAX_SIGNATURES
    assert parsed.schema1 is not None and len(parsed.schema1.key_ids) == DEFAULT_MAX_SIGNATURES


def test_the_signature_limit_is_a_parameter(ec_signer: Schema1Signer) -> None:
    from moorage.domain.manifests._fields import load_object
    from moorage.domain.manifests.schema1 import parse_schema1

    raw = _with_signatures(sign_schema1(payload(), ec_signer), 3)
    with pytest.raises(
        ManifestError, match=r"3 signatures, more than schema1_signature_limit \(2\)"
    ):
        parse_schema1(raw, load_object(raw), SIGNED, "sha256", max_signatures=2)
    assert parse_schema1(raw, load_object(raw), SIGNED, "sha256", max_signatures=3).schema1


@pytest.mark.parametrize("size", [2**63, 2**70])
def test_a_v1_size_past_64_bits_is_refused(size: int) -> None:
    history = payload()["history"]
    history[2] = {"v1Compatibility": v1("base", None, Size=size)}
    with pytest.raises(ManifestError):
        parse_manifest(unsigned_bytes(payload(history=history)), UNSIGNED)


def test_the_largest_v1_size_is_kept() -> None:
    history = payload()["history"]
    history[2] = {"v1Compatibility": v1("base", None, Size=2**63 - 1)}
    parsed = parse_manifest(unsigned_bytes(payload(history=history)), UNSIGNED)
    assert parsed.schema1 is not None and parsed.schema1.entries[0].size == 2**63 - 1


@pytest.mark.parametrize(
    "created", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00", "2020-13-01T00:00:00Z"]
)
def test_a_time_past_the_calendar_is_unknown(created: str) -> None:
    history = payload()["history"]
    history[2] = {"v1Compatibility": v1("base", None, created=created)}
    parsed = parse_manifest(unsigned_bytes(payload(history=history)), UNSIGNED)
    assert parsed.schema1 is not None and parsed.schema1.entries[0].created is None


def test_nul_and_lone_surrogates_leave_the_stored_fields() -> None:
    history = payload()["history"]
    history[2] = {"v1Compatibility": v1("base", None, author="a\u0000b", comment="c\ud800d")}
    parsed = parse_manifest(unsigned_bytes(payload(history=history)), UNSIGNED)
    assert parsed.schema1 is not None
    base = parsed.schema1.entries[0]
    assert base.author == "ab"
    assert base.comment is not None and base.comment.encode("utf-8")  # stores as UTF-8


def test_a_v1_compatibility_that_is_not_unicode_is_refused() -> None:
    body = unsigned_bytes(payload()).replace(
        b'{\\"id\\": \\"' + hexid("base").encode(),
        (b'{\\"x\\": \\"\\\\ud800\\", \\"id\\": \\"' + hexid("base").encode()),
    )
    # The outer JSON decodes to a v1Compatibility text holding the six characters
    # \ud800, which the inner parse turns into a lone surrogate: fine for JSON, not UTF-8.
    parse_manifest(body, UNSIGNED)  # escaped inside: still valid text
    raw = body.replace(b"\\\\ud800", b"\\ud800")
    with pytest.raises(ManifestError, match="not valid Unicode"):
        parse_manifest(raw, UNSIGNED)


def test_a_schema1_chain_past_the_limit_is_refused_before_its_entries_are_read() -> None:
    from moorage.domain.manifests.schema1 import MAX_V1_CHAIN

    count = MAX_V1_CHAIN + 1
    body = payload(
        fsLayers=[{"blobSum": blob("x")}] * count,
        history=[{"v1Compatibility": "not json"}] * count,  # never parsed
    )
    with pytest.raises(ManifestError, match=rf"{count} layers, more than .* \({MAX_V1_CHAIN}\)"):
        parse_manifest(unsigned_bytes(body), UNSIGNED)
