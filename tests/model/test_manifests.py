"""get_manifest_for_tag, lookup_manifest_by_digest, list_manifest_layers, create_manifest."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from tests.model.builders import (
    LAYER_TYPE,
    digest_of,
    push_artifact,
    push_blob,
    push_image,
    push_index,
    push_v1_chain,
)
from tests.model.conftest import FakeClock

from moorage.domain.errors import BlobUnknownError, ManifestError, ManifestUnknownError
from moorage.domain.media_types import DOCKER_SCHEMA2_MANIFEST, OCI_IMAGE_MANIFEST
from moorage.domain.records import RepositoryReference
from moorage.model.sql import SqlRegistryModel


def test_get_manifest_for_tag(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"a", b"b"])
    tag = model.retarget_tag(repo, "latest", image.manifest)
    assert tag is not None
    manifest = model.get_manifest_for_tag(tag)
    assert manifest == image.manifest
    assert manifest is not None and manifest.digest == tag.manifest_digest
    assert manifest.internal_manifest_bytes == image.manifest.internal_manifest_bytes
    # A dead version still knows its manifest (history, restore).
    model.delete_tag(repo, "latest")
    assert model.get_manifest_for_tag(tag) == image.manifest


def test_get_manifest_for_a_v1_tag_needs_a_backfill(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    leaf = push_v1_chain(model, repo, ["base", "leaf"])
    tag = model.retarget_tag(repo, "v1", leaf)
    assert tag is not None
    assert model.get_manifest_for_tag(tag) is None
    manifest = model.get_manifest_for_tag(tag, backfill_if_necessary=True)
    assert manifest is not None
    again = model.get_repo_tag(repo, "v1")
    assert again is not None and again.manifest_digest == manifest.digest


def test_lookup_manifest_by_digest(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"base", b"leaf"])
    model.retarget_tag(repo, "latest", image.manifest)
    found = model.lookup_manifest_by_digest(repo, image.manifest.digest, include_legacy_image=True)
    assert found == image.manifest
    assert found is not None and found.legacy_image is not None
    assert len(found.legacy_image.parents) == 1
    assert model.lookup_manifest_by_digest(repo, "sha256:deadbeef") is None


def test_lookup_manifest_by_digest_is_scoped_to_the_repository(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    model.retarget_tag(repo, "latest", image.manifest)
    assert model.lookup_manifest_by_digest(other_repo, image.manifest.digest) is None
    assert (
        model.lookup_manifest_by_digest(other_repo, image.manifest.digest, allow_dead=True) is None
    )


def test_dead_manifests_need_allow_dead(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"x"])
    model.retarget_tag(repo, "latest", image.manifest)
    model.delete_tag(repo, "latest")
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest) is None
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest, allow_dead=True) is not None
    # An untagged manifest is not pullable by digest either.
    untagged = push_image(model, repo, [b"untagged"], seed="u")
    assert model.lookup_manifest_by_digest(repo, untagged.manifest.digest) is None


def test_temp_tag_keeps_an_untagged_manifest_reachable_for_a_while(
    model: SqlRegistryModel, repo: RepositoryReference, clock: FakeClock
) -> None:
    image = push_image(model, repo, [b"child"])
    model.create_manifest(
        repo,
        image.manifest.internal_manifest_bytes,
        image.manifest.media_type,
        temp_tag_expiration_s=300,
    )
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest) is not None
    assert model.list_repository_tags(repo) == []
    clock.advance(301)
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest) is None


def test_children_of_a_tagged_list_are_reachable(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    amd = push_image(model, repo, [b"amd64"], seed="amd")
    arm = push_image(model, repo, [b"arm64"], seed="arm")
    index = push_index(model, repo, [(amd.manifest, "amd64"), (arm.manifest, "arm64")])
    assert index.is_manifest_list
    assert model.lookup_manifest_by_digest(repo, arm.manifest.digest) is None
    model.retarget_tag(repo, "multi", index)
    assert model.lookup_manifest_by_digest(repo, arm.manifest.digest) == arm.manifest
    model.delete_tag(repo, "multi")
    assert model.lookup_manifest_by_digest(repo, arm.manifest.digest) is None


def test_manifest_bytes_are_kept_exactly(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "comment": "\u2728 caf\u00e9",
            "history": [{"created_by": "\U0001f600"}],
        },
        ensure_ascii=False,
    ).encode()
    layer = b"emoji layer"
    push_blob(model, repo, config)
    push_blob(model, repo, layer)
    config_ref = {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "digest": digest_of(config),
        "size": len(config),
    }
    layer_ref = {"mediaType": LAYER_TYPE, "digest": digest_of(layer), "size": len(layer)}
    # Odd spacing and raw non-ASCII text: the stored bytes must be these, not a re-encoding.
    body = (
        '{\n  "schemaVersion": 2,\n  "mediaType": "'
        + DOCKER_SCHEMA2_MANIFEST
        + '",\n'
        + '  "config": '
        + json.dumps(config_ref)
        + ",\n"
        + '  "layers": ['
        + json.dumps(layer_ref)
        + "],\n"
        + '  "annotations_ignored": "\u2603 snow"\n}'
    ).encode()
    manifest = model.create_manifest(repo, body, DOCKER_SCHEMA2_MANIFEST)
    model.retarget_tag(repo, "unicode", manifest)
    found = model.lookup_manifest_by_digest(repo, digest_of(body))
    assert found is not None and found.internal_manifest_bytes == body
    assert found.digest == digest_of(body)


def test_create_manifest_requires_visible_blobs(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    image = push_image(model, other_repo, [b"only over there"])
    with pytest.raises(BlobUnknownError) as info:
        model.create_manifest(
            repo, image.manifest.internal_manifest_bytes, image.manifest.media_type
        )
    assert info.value.digest.startswith("sha256:")
    assert model.lookup_manifest_by_digest(repo, image.manifest.digest, allow_dead=True) is None


def test_create_manifest_requires_list_children(
    model: SqlRegistryModel, repo: RepositoryReference, other_repo: RepositoryReference
) -> None:
    child = push_image(model, other_repo, [b"child elsewhere"])
    with pytest.raises(ManifestUnknownError):
        push_index(model, repo, [(child.manifest, "amd64")])


def test_create_manifest_refuses_bodies_that_disagree_with_the_media_type(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    with pytest.raises(ManifestError):
        model.create_manifest(repo, image.manifest.internal_manifest_bytes, OCI_IMAGE_MANIFEST)
    with pytest.raises(ManifestError):
        model.create_manifest(repo, b"not json", DOCKER_SCHEMA2_MANIFEST)


def test_create_manifest_is_idempotent(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"x"])
    again = model.create_manifest(
        repo, image.manifest.internal_manifest_bytes, image.manifest.media_type
    )
    assert again == image.manifest


def test_artifact_keeps_subject_and_type(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    artifact = push_artifact(model, repo, image.manifest)
    assert artifact.subject_digest == image.manifest.digest
    assert artifact.artifact_type == "application/vnd.example.sbom"


def test_list_manifest_layers(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    image = push_image(model, repo, [b"base layer", b"middle", b"leaf layer"])
    layers = model.list_manifest_layers(image.manifest, include_placements=True)
    assert layers is not None
    assert [layer.layer_info.blob_digest for layer in layers] == [
        digest_of(b"base layer"),
        digest_of(b"middle"),
        digest_of(b"leaf layer"),
    ]
    chain = model.lookup_manifest_by_digest(
        repo, image.manifest.digest, allow_dead=True, include_legacy_image=True
    )
    assert chain is not None and chain.legacy_image is not None
    assert layers[-1].layer_info.layer_id == chain.legacy_image.docker_image_id
    assert layers[0].layer_info.layer_id == chain.legacy_image.parents[-1].docker_image_id
    for layer in layers:
        assert layer.blob is not None and layer.blob.placements == ("local",)
        assert layer.layer_info.command is not None and "step" in layer.layer_info.command
        assert layer.estimated_size(1) == layer.layer_info.compressed_size
        found = model.get_repo_blob_by_digest(repo, layer.layer_info.blob_digest)
        assert found == layer.blob


def test_list_manifest_layers_remote_layer_has_no_blob(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"local"], remote_layer=True)
    layers = model.list_manifest_layers(image.manifest)
    assert layers is not None and len(layers) == 2
    remote = layers[-1]
    assert remote.blob is None and remote.layer_info.is_remote
    assert remote.layer_info.urls == ("https://example.invalid/layer",)
    assert remote.estimated_size(2) == remote.layer_info.compressed_size * 2  # type: ignore[operator]


def test_list_manifest_layers_is_none_for_lists_and_broken_manifests(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    image = push_image(model, repo, [b"x"])
    index = push_index(model, repo, [(image.manifest, "amd64")])
    assert model.list_manifest_layers(index) is None
    broken = replace(image.manifest, internal_manifest_bytes=b"{")
    assert model.list_manifest_layers(broken) is None
    # A layer the repository cannot see.
    parsed = json.loads(image.manifest.internal_manifest_bytes)
    parsed["layers"][0]["digest"] = digest_of(b"never pushed")
    unknown = replace(image.manifest, internal_manifest_bytes=json.dumps(parsed).encode())
    assert model.list_manifest_layers(unknown) is None


def test_schema1_manifest_layers_come_from_the_v1_history(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    leaf = push_v1_chain(model, repo, ["base", "leaf"])
    tag = model.retarget_tag(repo, "v1", leaf)
    assert tag is not None
    manifest = model.backfill_manifest_for_tag(tag)
    assert manifest is not None
    layers = model.list_manifest_layers(manifest)
    assert layers is not None
    assert [layer.layer_info.layer_id for layer in layers] == [
        leaf.parents[0].docker_image_id,
        leaf.docker_image_id,
    ]
    assert layers[-1].layer_info.command == '["/bin/sh", "-c", "echo leaf"]'


# --- one transaction per push (issue 11) -------------------------------------------------------


def _labelled_image(
    model: SqlRegistryModel, repo: RepositoryReference, seed: str
) -> tuple[bytes, dict[str, str]]:
    """Config and layer stored, manifest bytes not: what a push has before its PUT."""
    labels = {"maintainer": "me", "quay.expires-after": "2h"}
    config = json.dumps({"architecture": "amd64", "config": {"Labels": labels}, "s": seed}).encode()
    layer = f"layer {seed}".encode()
    push_blob(model, repo, config)
    push_blob(model, repo, layer)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_SCHEMA2_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [{"mediaType": LAYER_TYPE, "digest": digest_of(layer), "size": len(layer)}],
        }
    ).encode()
    return body, labels


class CrashOnce:
    """Raises the first time it is called (a worker dying mid-push), then does the work."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("simulated crash")
        return self.real(*args, **kwargs)


def _nothing_stored(model: SqlRegistryModel, repo: RepositoryReference, digest: str) -> None:
    assert model.lookup_manifest_by_digest(repo, digest, allow_dead=True) is None
    assert model.get_repo_tag(repo, "latest") is None
    assert model.list_repository_tag_history(repo)[0] == []


def _everything_stored(
    model: SqlRegistryModel, repo: RepositoryReference, digest: str, labels: dict[str, str]
) -> None:
    tag = model.get_repo_tag(repo, "latest")
    assert tag is not None and tag.manifest_digest == digest
    assert tag.lifetime_end_ts == tag.lifetime_start_ts + 7200  # the expiry is not lost
    manifest = model.get_manifest_for_tag(tag)
    assert manifest is not None
    stored = model.list_manifest_labels(manifest)
    assert {label.key: label.value for label in stored} == labels
    assert {label.source_type_name for label in stored} == {"manifest"}


@pytest.mark.parametrize("step", ["labels", "tag"])
def test_a_push_that_fails_stores_nothing_and_its_retry_everything(
    model: SqlRegistryModel,
    repo: RepositoryReference,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    import moorage.model.sql.manifests as manifests_module

    body, labels = _labelled_image(model, repo, step)
    if step == "labels":
        crash = CrashOnce(model.add_config_labels)
        monkeypatch.setattr(model, "add_config_labels", crash)
    else:
        crash = CrashOnce(manifests_module.move_tag_locked)
        monkeypatch.setattr(manifests_module, "move_tag_locked", crash)
    digest = digest_of(body)
    with pytest.raises(RuntimeError, match="simulated crash"):
        model.create_manifest(repo, body, DOCKER_SCHEMA2_MANIFEST, labels=labels, tags=["latest"])
    _nothing_stored(model, repo, digest)
    manifest = model.create_manifest(
        repo, body, DOCKER_SCHEMA2_MANIFEST, labels=labels, tags=["latest"]
    )
    assert manifest.digest == digest and crash.calls == 2
    _everything_stored(model, repo, digest, labels)


def test_a_manifest_left_without_its_labels_gets_them_when_pushed_again(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    """What the old push left after a 500 at the labels: manifest row and tag, no labels."""
    body, labels = _labelled_image(model, repo, "half")
    half = model.create_manifest(repo, body, DOCKER_SCHEMA2_MANIFEST)
    assert model.retarget_tag(repo, "latest", half) is not None
    assert model.list_manifest_labels(half) == []
    again = model.create_manifest(
        repo, body, DOCKER_SCHEMA2_MANIFEST, labels=labels, tags=["latest"]
    )
    assert again.id == half.id
    _everything_stored(model, repo, half.digest, labels)
    # A third push adds no second copy of the labels.
    model.create_manifest(repo, body, DOCKER_SCHEMA2_MANIFEST, labels=labels, tags=["latest"])
    assert len(model.list_manifest_labels(half)) == len(labels)


def test_tags_move_in_the_push(model: SqlRegistryModel, repo: RepositoryReference) -> None:
    first = push_image(model, repo, [b"first"])
    assert model.retarget_tag(repo, "latest", first.manifest) is not None
    body, labels = _labelled_image(model, repo, "second")
    second = model.create_manifest(
        repo, body, DOCKER_SCHEMA2_MANIFEST, labels=labels, tags=["latest", "v2", "latest"]
    )
    for name in ("latest", "v2"):
        tag = model.get_repo_tag(repo, name)
        assert tag is not None and tag.manifest_id == second.id
    history, _ = model.list_repository_tag_history(repo, specific_tag_name="latest")
    assert [version.manifest_id for version in history] == [second.id, first.manifest.id]
    assert history[1].lifetime_end_ms == history[0].lifetime_start_ms


def test_a_label_the_database_cannot_hold_stores_nothing(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    from moorage.domain.labels import LabelValueError

    body, _ = _labelled_image(model, repo, "bad")
    with pytest.raises(LabelValueError):
        model.create_manifest(
            repo,
            body,
            DOCKER_SCHEMA2_MANIFEST,
            labels={"quay.expires-after": "99999999999999w"},
            tags=["latest"],
        )
    _nothing_stored(model, repo, digest_of(body))


def test_an_api_label_with_an_expiry_past_a_century_is_refused(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    from moorage.domain.labels import LabelValueError

    image = push_image(model, repo, [b"x"])
    model.retarget_tag(repo, "latest", image.manifest)
    with pytest.raises(LabelValueError, match="a century"):
        model.create_manifest_label(image.manifest, "quay.expires-after", "99999999999999w", "api")
    assert model.list_manifest_labels(image.manifest) == []


# --- descriptor sizes against stored blobs (issue 11) -------------------------------------------


def _manifest_with_sizes(
    model: SqlRegistryModel, repo: RepositoryReference, config_size: int, layer_sizes: list[int]
) -> bytes:
    config = b'{"architecture": "amd64"}'
    push_blob(model, repo, config)
    layers = []
    for index, size in enumerate(layer_sizes):
        data = b"layer %d" % index
        push_blob(model, repo, data)
        layers.append({"mediaType": LAYER_TYPE, "digest": digest_of(data), "size": size})
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_SCHEMA2_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": digest_of(config),
                "size": config_size,
            },
            "layers": layers,
        }
    ).encode()


@pytest.mark.parametrize(
    ("config_size", "layer_sizes", "where"),
    [(25, [7, 2**63 - 1], "layers[1]"), (26, [7], "config"), (25, [0], "layers[0]")],
)
def test_a_descriptor_size_must_be_the_stored_size(
    model: SqlRegistryModel,
    repo: RepositoryReference,
    config_size: int,
    layer_sizes: list[int],
    where: str,
) -> None:
    body = _manifest_with_sizes(model, repo, config_size, layer_sizes)
    with pytest.raises(ManifestError, match=rf"^{re.escape(where)}: size \d+ does not match"):
        model.create_manifest(repo, body, DOCKER_SCHEMA2_MANIFEST, tags=["latest"])
    _nothing_stored(model, repo, digest_of(body))
    good = _manifest_with_sizes(model, repo, 25, [7] * len(layer_sizes))
    assert model.create_manifest(repo, good, DOCKER_SCHEMA2_MANIFEST).digest == digest_of(good)


def test_foreign_layers_keep_any_size_but_not_a_sum_past_64_bits(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    config = b'{"architecture": "amd64"}'
    push_blob(model, repo, config)
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "size": 2**63 - 1,
        "urls": ["https://example.invalid/layer"],
    }

    def body(count: int) -> bytes:
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_SCHEMA2_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": digest_of(config),
                    "size": len(config),
                },
                "layers": [
                    {**foreign, "digest": digest_of(b"foreign %d" % i)} for i in range(count)
                ],
            }
        ).encode()

    one = model.create_manifest(repo, body(1), DOCKER_SCHEMA2_MANIFEST)
    assert one.layers_compressed_size == 2**63 - 1
    with pytest.raises(ManifestError, match="add up to more than"):
        model.create_manifest(repo, body(2), DOCKER_SCHEMA2_MANIFEST)
    assert model.lookup_manifest_by_digest(repo, digest_of(body(2)), allow_dead=True) is None


def test_racing_pushes_of_one_labelled_image_store_it_once(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    """Eight pushes of the same manifest at once (a client retrying while the first is
    still running): every one lands, and the labels are stored once, not eight times."""
    import threading

    body, labels = _labelled_image(model, repo, "race")
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def push() -> None:
        barrier.wait()
        try:
            model.create_manifest(
                repo, body, DOCKER_SCHEMA2_MANIFEST, labels=labels, tags=["latest"]
            )
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=push) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    manifest = model.lookup_manifest_by_digest(repo, digest_of(body))
    assert manifest is not None
    assert len(model.list_manifest_labels(manifest)) == len(labels)
    _everything_stored(model, repo, digest_of(body), labels)
    alive = [tag for tag in model.list_repository_tags(repo) if tag.name == "latest"]
    assert len(alive) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("artifactType", "a/" + "b" * 300),
        ("artifactType", "a/b\u0000"),
        ("config", "x/" + "y" * 300),
    ],
)
def test_client_strings_the_columns_cannot_hold_are_manifest_errors(
    model: SqlRegistryModel, repo: RepositoryReference, field: str, value: str
) -> None:
    """PostgreSQL refuses a varchar(255) longer than 255 or holding NUL (once a 500)."""
    config = b"{}"
    push_blob(model, repo, config)
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/x.c", "digest": digest_of(config), "size": 2},
        "layers": [],
    }
    if field == "artifactType":
        body["artifactType"] = value
    else:
        body["config"]["mediaType"] = value
    data = json.dumps(body).encode()
    with pytest.raises(ManifestError, match="at most 255 characters"):
        model.create_manifest(repo, data, OCI_IMAGE_MANIFEST)
    assert model.lookup_manifest_by_digest(repo, digest_of(data), allow_dead=True) is None


def test_a_stored_schema1_manifest_with_more_signatures_than_the_default_stays_readable(
    model: SqlRegistryModel, repo: RepositoryReference
) -> None:
    """Pushed under a raised ``schema1_signature_limit``: re-reading it (its layers) must
    not apply the default limit of 16."""
    from moorage.domain.manifests import (
        Schema1Signer,
        V1Entry,
        build_schema1_manifest,
        parse_manifest,
    )
    from moorage.domain.manifests.schema1 import DEFAULT_MAX_SIGNATURES
    from moorage.domain.media_types import DOCKER_SCHEMA1_SIGNED_MANIFEST

    layer = b"schema1 layer"
    push_blob(model, repo, layer)
    entry = V1Entry(
        "a" * 64,
        None,
        digest_of(layer),
        json.dumps({"id": "a" * 64}),
        None,
        None,
        None,
        None,
        False,
        len(layer),
    )
    signed = json.loads(
        build_schema1_manifest("devtable/simple", "v1", "amd64", [entry], Schema1Signer.generate())
    )
    count = DEFAULT_MAX_SIGNATURES + 4
    body = json.dumps({**signed, "signatures": signed["signatures"] * count}, indent=3).encode()
    parsed = parse_manifest(body, DOCKER_SCHEMA1_SIGNED_MANIFEST, max_signatures=count)
    manifest = model.create_manifest(repo, body, DOCKER_SCHEMA1_SIGNED_MANIFEST, parsed=parsed)
    layers = model.list_manifest_layers(manifest)
    assert layers is not None and [item.layer_info.blob_digest for item in layers] == [
        digest_of(layer)
    ]
