"""The single entry point: ``parse_manifest`` dispatches on the declared media type."""

from __future__ import annotations

from moorage.domain.echo import echo
from moorage.domain.manifests._fields import check_nesting, fail, load_object
from moorage.domain.manifests.model import ParsedManifest
from moorage.domain.manifests.oci import IMAGE_TYPES, INDEX_TYPES, parse_v2
from moorage.domain.manifests.schema1 import DEFAULT_MAX_SIGNATURES, parse_schema1
from moorage.domain.media_types import APPLICATION_JSON, SCHEMA1_TYPES

# ``application/json`` is what old clients send for schema1 (§2.1).
SCHEMA1_DECLARED_TYPES = SCHEMA1_TYPES | {APPLICATION_JSON}


def parse_manifest(
    data: bytes,
    media_type: str,
    digest_algorithm: str = "sha256",
    *,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
) -> ParsedManifest:
    """Parse and validate manifest bytes declared as ``media_type``.

    The declared type is checked against the body before any field is trusted. Raises
    ``ManifestError`` for anything malformed or unknown and ``ManifestUnverifiedError``
    for a schema1 signature that is missing (prettyjws) or does not verify. Schema1
    bodies declared as ``application/json`` come back typed by whether they are signed.
    An unsupported ``digest_algorithm`` raises ``InvalidDigestError``.
    """
    if media_type not in IMAGE_TYPES | INDEX_TYPES | SCHEMA1_DECLARED_TYPES:
        fail(f"unsupported manifest media type {echo(media_type)}")
    raw = bytes(data)
    body = load_object(raw)
    if media_type in SCHEMA1_DECLARED_TYPES:
        return parse_schema1(raw, body, media_type, digest_algorithm, max_signatures=max_signatures)
    return parse_v2(raw, body, media_type, digest_algorithm)


def check_json_nesting(data: bytes, what: str = "manifest") -> None:
    """``ManifestError`` when ``data`` is JSON nested too deep for any manifest: for callers
    that sniff a body before ``parse_manifest`` reads it (a recursive parser must never see
    one). Bodies that are not UTF-8 pass: the parser refuses those itself."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    check_nesting(text, what)
