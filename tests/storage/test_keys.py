"""Key building and validation: the only place keys are made."""

from __future__ import annotations

import uuid

import pytest

from moorage.domain.errors import InvalidDigestError
from moorage.storage.driver import InvalidKeyError
from moorage.storage.keys import (
    blob_key,
    derived_key,
    new_session_id,
    upload_prefix,
    validate_key,
    validate_prefix,
    validate_session_id,
)

HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_blob_key_layout() -> None:
    assert blob_key(f"sha256:{HEX}") == f"blobs/sha256/e3/{HEX}"
    sha512 = "a" * 128
    assert blob_key(f"sha512:{sha512}") == f"blobs/sha512/aa/{sha512}"


@pytest.mark.parametrize(
    "digest",
    [
        "",
        HEX,
        f"sha256:{HEX[:-1]}",
        f"sha256:{HEX.upper()}",
        f"md5:{HEX}",
        f"sha256:../{HEX[3:]}",
        f"sha256:{HEX}/../x",
        "sha256:/etc/passwd",
        f"sha256:{HEX}\x00",
    ],
)
def test_blob_key_rejects_malformed_digests(digest: str) -> None:
    with pytest.raises(InvalidDigestError):
        blob_key(digest)


def test_derived_key_accepts_canonical_uuids() -> None:
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    expected = f"derived/12/{value}/data"
    assert derived_key(str(value)) == expected
    assert derived_key(value.hex) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-uuid",
        "../../etc",
        "{12345678-1234-5678-1234-567812345678}",
        "12345678-1234-5678-1234-56781234567G",
        "12345678-1234-5678-1234-567812345678/..",
    ],
)
def test_derived_key_rejects_malformed_uuids(value: str) -> None:
    with pytest.raises(InvalidKeyError):
        derived_key(value)


def test_upload_prefix_and_session_ids() -> None:
    session_id = new_session_id()
    assert validate_session_id(session_id) == session_id
    assert upload_prefix(session_id) == f"_uploads/{session_id}"
    with pytest.raises(InvalidKeyError):
        upload_prefix("../../etc")


@pytest.mark.parametrize("key", ["a", "a/b", "blobs/sha256/e3/x/data", "A-b_c.d/e.f", "x" * 100])
def test_valid_keys(key: str) -> None:
    assert validate_key(key) == key
    assert validate_prefix(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/../x",
        "..",
        "/abs",
        "a//b",
        "a/",
        "",
        "a\x00b",
        "a\\b",
        ".",
        "a/./b",
        ".hidden",
        "a/.tmp",
        "a b",
        "é",
        "a\nb",
        "_uploads",
        "_uploads/x",
        "x" * 1025,
    ],
)
def test_invalid_keys(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_empty_prefix_means_everything() -> None:
    assert validate_prefix("") == ""
    with pytest.raises(InvalidKeyError):
        validate_prefix("/")


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(b"a")  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        validate_session_id(None)  # type: ignore[arg-type]


def test_invalid_key_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_key("../x")
