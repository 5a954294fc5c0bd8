"""parse_manifest for OCI and Docker schema 2 types: shapes, type confusion, validation."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.domain.digest import EMPTY_JSON_DIGEST
from moorage.domain.errors import InvalidDigestError, ManifestError
from moorage.domain.manifests import Descriptor, ParsedManifest, parse_manifest
from moorage.domain.media_types import (
    DOCKER_SCHEMA2_CONFIG,
    DOCKER_SCHEMA2_MANIFEST,
    DOCKER_SCHEMA2_MANIFEST_LIST,
    OCI_EMPTY,
    OCI_IMAGE_CONFIG,
    OCI_IMAGE_INDEX,
    OCI_IMAGE_MANIFEST,
)

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def dg(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def desc(media_type: str, seed: str, size: int = 10, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": dg(seed), "size": size, **extra}


def oci_image(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MANIFEST,
        "config": desc(OCI_IMAGE_CONFIG, "config", 100),
        "layers": [desc(OCI_LAYER, "base", 1000), desc(OCI_LAYER, "leaf", 2000)],
    }
    body.update(overrides)
    return body


def oci_index(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_INDEX,
        "manifests": [
            desc(
                OCI_IMAGE_MANIFEST, "amd64", 500, platform={"architecture": "amd64", "os": "linux"}
            ),
            desc(
                OCI_IMAGE_MANIFEST, "arm64", 501, platform={"architecture": "arm64", "os": "linux"}
            ),
        ],
    }
    body.update(overrides)
    return body


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body, indent="\t").encode()


def parse(body: dict[str, Any], media_type: str) -> ParsedManifest:
    return parse_manifest(raw(body), media_type)


# --- each format parses -------------------------------------------------------------------


def test_oci_image_manifest_parses_with_layers_in_order_and_raw_digest() -> None:
    data = raw(oci_image(annotations={"org.opencontainers.image.title": "x"}))
    parsed = parse_manifest(data, OCI_IMAGE_MANIFEST)
    assert parsed.media_type == OCI_IMAGE_MANIFEST
    assert parsed.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert parsed.raw == data
    assert parsed.config == Descriptor(OCI_IMAGE_CONFIG, dg("config"), 100)
    assert [layer.digest for layer in parsed.layers] == [dg("base"), dg("leaf")]
    assert [layer.size for layer in parsed.layers] == [1000, 2000]
    assert parsed.children == ()
    assert parsed.annotations == {"org.opencontainers.image.title": "x"}
    assert parsed.is_list is False
    assert parsed.schema1 is None
    assert parsed.local_blob_digests == (dg("config"), dg("base"), dg("leaf"))


def test_oci_image_without_artifact_type_reports_config_media_type() -> None:
    parsed = parse(oci_image(), OCI_IMAGE_MANIFEST)
    assert parsed.artifact_type == OCI_IMAGE_CONFIG


def test_oci_artifact_with_subject_and_artifact_type() -> None:
    empty = {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2, "data": "e30="}
    body = oci_image(
        config=empty,
        layers=[empty],
        artifactType="application/vnd.example+type",
        subject=desc(OCI_IMAGE_MANIFEST, "subject", 321),
    )
    parsed = parse(body, OCI_IMAGE_MANIFEST)
    assert parsed.artifact_type == "application/vnd.example+type"
    assert parsed.subject is not None
    assert parsed.subject.digest == dg("subject")
    assert parsed.subject.size == 321
    assert parsed.config is not None and parsed.config.data == "e30="
    # The empty blob is both config and layer: required once.
    assert parsed.local_blob_digests == (EMPTY_JSON_DIGEST,)


def test_oci_image_with_empty_layers_and_no_media_type_field() -> None:
    body = oci_image(layers=[])
    del body["mediaType"]
    parsed = parse(body, OCI_IMAGE_MANIFEST)
    assert parsed.layers == ()
    assert parsed.local_blob_digests == (dg("config"),)


def test_unknown_extra_fields_are_tolerated_and_raw_kept() -> None:
    body = oci_image(custom={"anything": [1, 2]})
    body["config"]["extraField"] = "kept"
    data = raw(body)
    parsed = parse_manifest(data, OCI_IMAGE_MANIFEST)
    assert parsed.raw == data
    assert parsed.config is not None and parsed.config.digest == dg("config")


def test_oci_index_parses_children_with_platform() -> None:
    parsed = parse(oci_index(artifactType="application/vnd.food.stand"), OCI_IMAGE_INDEX)
    assert parsed.is_list is True
    assert parsed.config is None
    assert parsed.layers == ()
    assert [child.digest for child in parsed.children] == [dg("amd64"), dg("arm64")]
    assert parsed.children[1].platform == {"architecture": "arm64", "os": "linux"}
    assert parsed.artifact_type == "application/vnd.food.stand"
    assert parsed.local_blob_digests == ()


def test_index_without_artifact_type_reports_none() -> None:
    assert parse(oci_index(), OCI_IMAGE_INDEX).artifact_type is None


def test_empty_index_is_valid() -> None:
    parsed = parse(oci_index(manifests=[]), OCI_IMAGE_INDEX)
    assert parsed.children == ()
    assert parsed.is_list is True


def test_docker_schema2_manifest_with_foreign_layer() -> None:
    foreign = desc(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "foreign",
        5,
        urls=["https://example.com/layer"],
    )
    body = {
        "schemaVersion": 2,
        "mediaType": DOCKER_SCHEMA2_MANIFEST,
        "config": desc(DOCKER_SCHEMA2_CONFIG, "cfg", 7),
        "layers": [foreign, desc(DOCKER_LAYER, "top", 9)],
    }
    parsed = parse(body, DOCKER_SCHEMA2_MANIFEST)
    assert parsed.media_type == DOCKER_SCHEMA2_MANIFEST
    assert [layer.digest for layer in parsed.layers] == [dg("foreign"), dg("top")]
    assert parsed.remote_layers == (parsed.layers[0],)
    assert parsed.layers[0].urls == ("https://example.com/layer",)
    assert parsed.local_blob_digests == (dg("cfg"), dg("top"))


def test_docker_manifest_list_parses() -> None:
    body = oci_index(mediaType=DOCKER_SCHEMA2_MANIFEST_LIST)
    body["manifests"][0]["mediaType"] = DOCKER_SCHEMA2_MANIFEST
    parsed = parse(body, DOCKER_SCHEMA2_MANIFEST_LIST)
    assert parsed.is_list is True
    assert parsed.children[0].media_type == DOCKER_SCHEMA2_MANIFEST
    assert len(parsed.children) == 2


def test_sha512_descriptors_and_digest_algorithm() -> None:
    sha512 = "sha512:" + hashlib.sha512(b"layer").hexdigest()
    body = oci_image(layers=[{"mediaType": OCI_LAYER, "digest": sha512, "size": 5}])
    data = raw(body)
    parsed = parse_manifest(data, OCI_IMAGE_MANIFEST, digest_algorithm="sha512")
    assert parsed.digest == "sha512:" + hashlib.sha512(data).hexdigest()
    assert parsed.layers[0].digest == sha512


def test_unsupported_digest_algorithm_for_the_manifest_digest() -> None:
    with pytest.raises(InvalidDigestError):
        parse_manifest(raw(oci_image()), OCI_IMAGE_MANIFEST, digest_algorithm="md5")


def test_descriptor_to_json_dict_omits_empty_fields() -> None:
    parsed = parse(oci_index(), OCI_IMAGE_INDEX)
    assert parsed.children[0].to_json_dict() == {
        "mediaType": OCI_IMAGE_MANIFEST,
        "digest": dg("amd64"),
        "size": 500,
        "platform": {"architecture": "amd64", "os": "linux"},
    }


def test_descriptors_are_hashable_despite_dict_fields() -> None:
    parsed = parse(oci_index(), OCI_IMAGE_INDEX)
    assert len({parsed.children[0], parsed.children[1], parsed.children[0]}) == 2
    assert hash(parsed) == hash(parse(oci_index(), OCI_IMAGE_INDEX))


# --- type confusion -------------------------------------------------------------------------


def test_index_body_declared_as_image_manifest_is_refused() -> None:
    body = oci_index()
    del body["mediaType"]
    with pytest.raises(ManifestError, match="manifests"):
        parse(body, OCI_IMAGE_MANIFEST)


def test_image_body_declared_as_index_is_refused() -> None:
    body = oci_image()
    del body["mediaType"]
    with pytest.raises(ManifestError, match="config"):
        parse(body, OCI_IMAGE_INDEX)


def test_image_body_with_manifests_smuggled_in_is_refused() -> None:
    body = oci_image(manifests=oci_index()["manifests"])
    with pytest.raises(ManifestError, match="manifests"):
        parse(body, OCI_IMAGE_MANIFEST)


@pytest.mark.parametrize(
    ("body_type", "declared"),
    [
        (OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST),
        (DOCKER_SCHEMA2_MANIFEST, OCI_IMAGE_MANIFEST),
        (OCI_IMAGE_MANIFEST, DOCKER_SCHEMA2_MANIFEST),
    ],
)
def test_body_media_type_must_match_declared(body_type: str, declared: str) -> None:
    with pytest.raises(ManifestError, match="does not match"):
        parse(oci_image(mediaType=body_type), declared)


def test_list_media_type_mismatch() -> None:
    with pytest.raises(ManifestError, match="does not match"):
        parse(oci_index(), DOCKER_SCHEMA2_MANIFEST_LIST)


def test_unknown_declared_media_type_is_refused() -> None:
    with pytest.raises(ManifestError, match="unsupported"):
        parse(oci_image(), "application/vnd.example.thing+json")


@pytest.mark.parametrize("version", [1, 3, "2", True, None])
def test_schema_version_must_be_two(version: object) -> None:
    with pytest.raises(ManifestError, match="schemaVersion"):
        parse(oci_image(schemaVersion=version), OCI_IMAGE_MANIFEST)


# --- malformed content ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"{not json", b"[]", b'"a string"', "{}".encode("utf-16"), b"\xef\xbb\xbf{}"],
)
def test_bad_json_is_refused(data: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(data, OCI_IMAGE_MANIFEST)


def test_duplicate_keys_are_refused() -> None:
    data = raw(oci_image())[:-1] + b', "mediaType": "' + OCI_IMAGE_INDEX.encode() + b'"}'
    with pytest.raises(ManifestError, match="duplicate"):
        parse_manifest(data, OCI_IMAGE_MANIFEST)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "g" * 64,
        "md5:" + "a" * 32,
        "sha256",
        "",
        12,
        None,
    ],
)
def test_malformed_layer_digest_is_refused(digest: object) -> None:
    body = oci_image()
    body["layers"][1]["digest"] = digest
    with pytest.raises(ManifestError, match=r"layers\[1\]"):
        parse(body, OCI_IMAGE_MANIFEST)


def test_malformed_child_digest_is_refused() -> None:
    body = oci_index()
    body["manifests"][0]["digest"] = "sha256:nothex"
    with pytest.raises(ManifestError, match=r"manifests\[0\]"):
        parse(body, OCI_IMAGE_INDEX)


def test_malformed_subject_digest_is_refused() -> None:
    with pytest.raises(ManifestError, match="subject"):
        parse(oci_image(subject={"mediaType": OCI_IMAGE_MANIFEST, "size": 1}), OCI_IMAGE_MANIFEST)


@pytest.mark.parametrize("size", [-1, 1.5, "10", True, None, 2**63])
def test_bad_sizes_are_refused(size: object) -> None:
    body = oci_image()
    body["config"]["size"] = size
    with pytest.raises(ManifestError, match=r"size|64-bit"):
        parse(body, OCI_IMAGE_MANIFEST)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mediaType", 5),
        ("mediaType", ""),
        ("urls", "https://x"),
        ("urls", [1]),
        ("annotations", {"k": 1}),
        ("annotations", ["k"]),
        ("platform", {"os": "linux"}),
    ],
)
def test_bad_descriptor_fields_are_refused(field: str, value: object) -> None:
    body = oci_image()
    body["layers"][0][field] = value
    with pytest.raises(ManifestError):
        parse(body, OCI_IMAGE_MANIFEST)


def test_missing_config_media_type_is_refused() -> None:
    body = oci_image()
    del body["config"]["mediaType"]
    with pytest.raises(ManifestError, match="mediaType"):
        parse(body, OCI_IMAGE_MANIFEST)


def test_data_field_must_match_digest_and_size() -> None:
    good = {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2, "data": "e30="}
    assert parse(oci_image(config=good), OCI_IMAGE_MANIFEST).config is not None
    wrong_content = dict(good, data=base64.b64encode(b"[]").decode())
    with pytest.raises(ManifestError, match="digest"):
        parse(oci_image(config=wrong_content), OCI_IMAGE_MANIFEST)
    with pytest.raises(ManifestError, match="size"):
        parse(oci_image(config=dict(good, size=3)), OCI_IMAGE_MANIFEST)
    with pytest.raises(ManifestError, match="base64"):
        parse(oci_image(config=dict(good, data="e30")), OCI_IMAGE_MANIFEST)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("layers", {"a": 1}),
        ("annotations", {"k": None}),
        ("artifactType", 7),
        ("artifactType", ""),
        ("config", "sha256:abc"),
    ],
)
def test_bad_top_level_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(ManifestError):
        parse(oci_image(**{field: value}), OCI_IMAGE_MANIFEST)


def test_index_requires_manifests_array() -> None:
    with pytest.raises(ManifestError, match="manifests"):
        parse(oci_index(manifests={"x": 1}), OCI_IMAGE_INDEX)
    body = oci_index()
    del body["manifests"]
    with pytest.raises(ManifestError, match="manifests"):
        parse(body, OCI_IMAGE_INDEX)


# -- issue 11: hostile JSON: nesting, huge integers, internals in messages -----------------


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting_is_refused_without_recursion(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    body = json.dumps(oci_image())[:-1] + f', "x": {nested}}}'
    with pytest.raises(ManifestError, match="nested") as caught:
        parse_manifest(body.encode(), OCI_IMAGE_MANIFEST)
    assert len(str(caught.value)) <= 200


def test_alternating_deep_nesting_is_refused() -> None:
    nested = '[{"a":' * 40 + "1" + "}]" * 40  # 80 levels, never 65 of one kind in a row
    body = json.dumps(oci_image())[:-1] + f', "x": {nested}}}'
    with pytest.raises(ManifestError, match="nested"):
        parse_manifest(body.encode(), OCI_IMAGE_MANIFEST)


def test_brackets_inside_strings_do_not_count() -> None:
    deep_text = '[{"\\"' * 500
    parsed = parse(oci_image(annotations={"k": deep_text}), OCI_IMAGE_MANIFEST)
    assert parsed.annotations == {"k": deep_text}


def test_reasonable_nesting_parses() -> None:
    nested: Any = 1
    for _ in range(60):
        nested = [nested]
    assert parse(oci_image(x=nested), OCI_IMAGE_MANIFEST).config is not None


@pytest.mark.parametrize("number", [str(2**63), str(-(2**63) - 1), "9" * 5000, "1" * 10_000])
def test_integers_past_64_bits_are_refused_anywhere(number: str) -> None:
    body = json.dumps(oci_image())[:-1] + f', "extra": {number}}}'
    with pytest.raises(ManifestError) as caught:
        parse_manifest(body.encode(), OCI_IMAGE_MANIFEST)
    message = str(caught.value)
    assert "64-bit" in message and len(message) <= 200 and "sys." not in message


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_infinite_floats_are_refused(number: str) -> None:
    body = json.dumps(oci_image())[:-1] + f', "extra": {number}}}'
    with pytest.raises(ManifestError, match="number"):
        parse_manifest(body.encode(), OCI_IMAGE_MANIFEST)


def test_schema1_size_past_64_bits_is_refused() -> None:
    v1 = '{"id": "' + "a" * 64 + '", "Size": ' + str(2**70) + "}"
    body = {
        "schemaVersion": 1,
        "name": "acme/app",
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": dg("layer")}],
        "history": [{"v1Compatibility": v1}],
    }
    with pytest.raises(ManifestError, match="64-bit"):
        parse(body, "application/vnd.docker.distribution.manifest.v1+json")


def test_json_syntax_errors_are_in_our_words() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(b'{"schemaVersion": 2,, ' + b"x" * 10_000, OCI_IMAGE_MANIFEST)
    message = str(caught.value)
    assert message.startswith("manifest is not valid JSON") and len(message) <= 200
    assert "Expecting" not in message  # the json module's own wording


def test_nesting_scan_is_linear_on_unterminated_escaped_strings() -> None:
    # Each escaped quote once restarted the string scan: quadratic, 40 s for 80 KB.
    import time

    from moorage.domain.manifests._fields import check_nesting

    hostile = "[" * 70 + '"' + '\\"' * 2_000_000  # 4 MB, the default manifest size limit
    started = time.perf_counter()
    with pytest.raises(ManifestError, match="nested"):
        check_nesting(hostile)
    assert time.perf_counter() - started < 2


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


_json = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=4), children, max_size=3)
    ),
    max_leaves=20,
)


@given(_json, st.integers(0, 6))
def test_nesting_check_agrees_with_the_real_depth(value: Any, limit: int) -> None:
    from moorage.domain.manifests._fields import check_nesting

    text = json.dumps(value)
    if _depth(value) > limit:
        with pytest.raises(ManifestError, match="nested"):
            check_nesting(text, limit=limit)
    else:
        check_nesting(text, limit=limit)


@pytest.mark.parametrize(
    ("field", "value"),
    [("schemaVersion", "x" * 10_000), ("schemaVersion", [[1] * 5000]), ("mediaType", "y" * 10_000)],
)
def test_messages_quote_little_of_the_input(field: str, value: object) -> None:
    with pytest.raises(ManifestError) as caught:
        parse(oci_image(**{field: value}), OCI_IMAGE_MANIFEST)
    assert len(str(caught.value)) <= 200
    with pytest.raises(ManifestError) as caught:
        parse_manifest(b"{}", "z" * 10_000)
    assert len(str(caught.value)) <= 200
