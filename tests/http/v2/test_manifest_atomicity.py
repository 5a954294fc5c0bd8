"""Manifest PUTs are all or nothing, and bounded (issue 11): bad configs and labels are
400s that store nothing, a crashed push stores nothing and its retry everything,
descriptor sizes match the stored blobs, and the costly parts have configurable limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from tests.http.v2.helpers import LAYER, SCHEMA2, base_v1_entry, put_manifest, sha256, upload

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.domain.records import RepositoryReference

NAME = "acme/app"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


@pytest.fixture
def app_with(tmp_path: Path) -> Iterator[Any]:
    """Builds an application with the given settings; a client that sees 500s as answers."""
    built: list[Application] = []

    def make(**overrides: Any) -> tuple[Application, TestClient]:
        app = build(load_settings(data_dir=tmp_path / f"data{len(built)}", **overrides))
        built.append(app)
        return app, TestClient(app.asgi, raise_server_exceptions=False)

    yield make
    for app in built:
        app.close()


@pytest.fixture
def shared_client(app_with: Any) -> TestClient:
    """One application for every example of a property test (building one migrates)."""
    _, client = app_with()
    assert isinstance(client, TestClient)
    return client


def push_config(
    client: TestClient,
    config: bytes | dict[str, Any],
    *,
    tag: str = "latest",
    layers: tuple[bytes, ...] = (b"a layer",),
    sizes: list[int] | None = None,
    config_size: int | None = None,
) -> tuple[Any, bytes]:
    config_bytes = config if isinstance(config, bytes) else json.dumps(config).encode()
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": SCHEMA2,
            "config": {
                "mediaType": CONFIG_TYPE,
                "digest": upload(client, NAME, config_bytes),
                "size": len(config_bytes) if config_size is None else config_size,
            },
            "layers": [
                {
                    "mediaType": LAYER,
                    "digest": upload(client, NAME, layer),
                    "size": len(layer) if sizes is None else sizes[index],
                }
                for index, layer in enumerate(layers)
            ],
        }
    ).encode()
    return put_manifest(client, NAME, tag, body, SCHEMA2), body


def assert_refused(response: Any, client: TestClient, body: bytes, *words: str) -> None:
    """400 MANIFEST_INVALID in the OCI error format, and nothing stored."""
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert errors[0]["code"] == "MANIFEST_INVALID"
    message = errors[0]["message"]
    assert len(message) <= 200
    for word in words:
        assert word in message
    assert client.get(f"/v2/{NAME}/manifests/latest").status_code == 404
    assert client.get(f"/v2/{NAME}/manifests/{sha256(body)}").status_code == 404


def repository(app: Application) -> RepositoryReference:
    repo = app.model.lookup_repository("acme", "app")
    assert repo is not None
    return repo


# --- bad configs and labels: 400, nothing stored ----------------------------------------------


@pytest.mark.parametrize("value", [1, 2.5, True, None, {"a": 1}, [1], []])
def test_a_label_value_that_is_not_a_string_is_400(app_with: Any, value: object) -> None:
    _, client = app_with()
    response, body = push_config(client, {"config": {"Labels": {"k": value}}, "history": [{}]})
    assert_refused(response, client, body, "label 'k'", "string")


@pytest.mark.parametrize("depth", [65, 600, 5000])
def test_a_deeply_nested_config_is_400(app_with: Any, depth: int) -> None:
    _, client = app_with()
    nested = "[" * depth + "]" * depth
    config = ('{"config": {"Labels": {}}, "history": [{}], "x": ' + nested + "}").encode()
    response, body = push_config(client, config)
    assert_refused(response, client, body, "image config")


def test_an_expiry_past_64_bits_is_400_not_a_lost_expiry(app_with: Any) -> None:
    _, client = app_with()
    labels = {"quay.expires-after": "99999999999999w"}
    response, body = push_config(client, {"config": {"Labels": labels}})
    assert_refused(response, client, body, "quay.expires-after", "century")


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ({"k" * 300: "v"}, ("255 characters",)),
        ({"k": "a\u0000b"}, ("not valid Unicode",)),
        ({"k": "\ud800"}, ("not valid Unicode",)),
    ],
)
def test_labels_the_database_cannot_hold_are_400(
    app_with: Any, labels: dict[str, str], words: tuple[str, ...]
) -> None:
    _, client = app_with()
    config = json.dumps({"config": {"Labels": labels}}).encode()  # \u escapes on the wire
    response, body = push_config(client, config)
    assert_refused(response, client, body, *words)


def test_a_label_value_too_deep_to_parse_is_kept_as_text(app_with: Any) -> None:
    app, client = app_with()
    deep = "[" * 100_000 + "]" * 100_000
    response, _ = push_config(client, {"config": {"Labels": {"k": deep}}})
    assert response.status_code == 201, response.text
    tag = app.model.get_repo_tag(repository(app), "latest")
    assert tag is not None
    manifest = app.model.get_manifest_for_tag(tag)
    assert manifest is not None
    [label] = app.model.list_manifest_labels(manifest)
    assert label.value == deep and label.media_type_name == "text/plain"


# --- sizes --------------------------------------------------------------------------------------


def test_two_layers_of_the_largest_size_are_400_not_an_overflow(app_with: Any) -> None:
    _, client = app_with()
    response, body = push_config(
        client, {"architecture": "amd64"}, layers=(b"one", b"two"), sizes=[2**63 - 1] * 2
    )
    assert_refused(response, client, body, "does not match the stored blob")


@pytest.mark.parametrize(
    ("sizes", "config_size", "where"),
    [([2**63 - 1], None, "layers[0]"), ([10_999], None, "layers[0]"), ([11_000], 3, "config")],
)
def test_a_descriptor_size_must_be_the_stored_blob_size(
    app_with: Any, sizes: list[int], config_size: int | None, where: str
) -> None:
    _, client = app_with()
    layer = bytes(11_000)
    response, body = push_config(
        client, {"architecture": "amd64"}, layers=(layer,), sizes=sizes, config_size=config_size
    )
    assert_refused(response, client, body, where, "11000 bytes" if where != "config" else "")
    ok, _ = push_config(client, {"architecture": "amd64"}, layers=(layer,))
    assert ok.status_code == 201


# --- limits -------------------------------------------------------------------------------------


def test_labels_past_the_limit_are_400_naming_the_setting(app_with: Any) -> None:
    _, client = app_with(manifest_label_limit=3)
    labels = {f"k{i}": "v" for i in range(4)}
    response, body = push_config(client, {"config": {"Labels": labels}})
    assert_refused(response, client, body, "manifest_label_limit (3)")
    ok, _ = push_config(client, {"config": {"Labels": dict(list(labels.items())[:3])}})
    assert ok.status_code == 201


def test_fifty_thousand_labels_are_refused_by_default(app_with: Any) -> None:
    """Once 24 s of CPU; now refused after counting them (and within the config limit)."""
    app, client = app_with(manifest_config_size_limit=4 * 1024 * 1024)
    labels = {f"label.{i}": "v" for i in range(50_000)}
    response, body = push_config(client, {"config": {"Labels": labels}})
    assert_refused(response, client, body, "50000 labels", "manifest_label_limit (256)")
    assert app.model.get_repo_tag(repository(app), "latest") is None


def test_a_config_with_a_huge_history_gets_no_v1_chain(app_with: Any) -> None:
    """45,000 empty history entries fit in 1 MiB and once cost 149 s of V1 chain writes:
    past the V1 limit the image is stored without a V1 view (as when history and layers
    disagree) and has no schema 1 form."""
    app, client = app_with()
    history = [{"empty_layer": True}] * 45_000 + [{"created_by": "top"}]
    response, body = push_config(client, {"config": {}, "history": history})
    assert response.status_code == 201, response.text
    found = app.model.lookup_manifest_by_digest(
        repository(app), sha256(body), include_legacy_image=True
    )
    assert found is not None and found.legacy_image is None
    schema1 = client.get(f"/v2/{NAME}/manifests/latest", headers={"Accept": SCHEMA1_SIGNED})
    assert schema1.status_code == 404


def test_a_config_past_the_size_limit_is_400_naming_the_setting(app_with: Any) -> None:
    _, client = app_with(manifest_config_size_limit=1024)
    response, body = push_config(client, {"config": {"Labels": {"k": "v" * 1024}}})
    assert_refused(response, client, body, "manifest_config_size_limit (1024 bytes)")


def test_schema1_signatures_past_the_limit_are_400_naming_the_setting(
    app_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moorage.domain.manifests import Schema1Signer, build_schema1_manifest, jws_verify

    _, client = app_with(schema1_signature_limit=2)
    layer = b"schema1 layer"
    upload(client, NAME, layer)
    signed = json.loads(
        build_schema1_manifest(
            NAME, "latest", "amd64", [base_v1_entry(layer, "a" * 64)], Schema1Signer.generate()
        )
    )
    read = jws_verify._read_signature
    reads: list[int] = []
    monkeypatch.setattr(jws_verify, "_read_signature", lambda i, b: reads.append(i) or read(i, b))

    def with_signatures(count: int) -> bytes:
        return json.dumps({**signed, "signatures": signed["signatures"] * count}, indent=3).encode()

    many = with_signatures(2400)
    response = put_manifest(client, NAME, "latest", many, SCHEMA1_SIGNED)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    assert "schema1_signature_limit (2)" in response.json()["errors"][0]["message"]
    assert reads == []  # the work is bounded: not one of the 2,400 was read or verified
    assert client.get(f"/v2/{NAME}/manifests/latest").status_code == 404
    ok = put_manifest(client, NAME, "latest", with_signatures(2), SCHEMA1_SIGNED)
    assert ok.status_code == 201, ok.text
    assert len(reads) == 2


# --- a crash half way: nothing stored, the retry stores everything ------------------------------


class CrashOnce:
    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("simulated crash")
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("step", ["labels", "tag"])
def test_a_push_that_crashes_stores_nothing_and_its_retry_everything(
    app_with: Any, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    import moorage.model.sql.manifests as manifests_module

    app, client = app_with()
    if step == "labels":
        monkeypatch.setattr(app.model, "add_config_labels", CrashOnce(app.model.add_config_labels))
    else:
        crash = CrashOnce(manifests_module.move_tag_locked)
        monkeypatch.setattr(manifests_module, "move_tag_locked", crash)
    labels = {"maintainer": "me", "quay.expires-after": "2h"}
    config = {"config": {"Labels": labels}, "history": [{"created_by": "step"}]}
    failed, body = push_config(client, config)
    assert failed.status_code == 500
    assert client.get(f"/v2/{NAME}/manifests/latest").status_code == 404
    repo = repository(app)
    assert app.model.lookup_manifest_by_digest(repo, sha256(body), allow_dead=True) is None
    retried = put_manifest(client, NAME, "latest", body, SCHEMA2)
    assert retried.status_code == 201
    tag = app.model.get_repo_tag(repo, "latest")
    assert tag is not None and tag.lifetime_end_ts == tag.lifetime_start_ts + 7200
    manifest = app.model.get_manifest_for_tag(tag)
    assert manifest is not None
    assert {lb.key: lb.value for lb in app.model.list_manifest_labels(manifest)} == labels
    assert client.get(f"/v2/{NAME}/manifests/latest").status_code == 200


def test_a_manifest_an_older_push_left_without_labels_gets_them_on_retry(app_with: Any) -> None:
    """The state the old code left after a 500 in the labels: a manifest row, no labels, no
    tag. Pushing it again used to answer 201 and keep it that way (the expiry lost)."""
    app, client = app_with()
    labels = {"quay.expires-after": "2h"}
    config_bytes = json.dumps({"config": {"Labels": labels}}).encode()
    layer = b"a layer"
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": SCHEMA2,
            "config": {
                "mediaType": CONFIG_TYPE,
                "digest": upload(client, NAME, config_bytes),
                "size": len(config_bytes),
            },
            "layers": [{"mediaType": LAYER, "digest": upload(client, NAME, layer), "size": 7}],
        }
    ).encode()
    repo = repository(app)
    half = app.model.create_manifest(repo, body, SCHEMA2)  # no labels, no tag
    assert app.model.list_manifest_labels(half) == []
    assert put_manifest(client, NAME, "latest", body, SCHEMA2).status_code == 201
    tag = app.model.get_repo_tag(repo, "latest")
    assert tag is not None and tag.lifetime_end_ts == tag.lifetime_start_ts + 7200
    assert [label.key for label in app.model.list_manifest_labels(half)] == ["quay.expires-after"]


# --- generated configs: a 201 or a 400, never a 5xx -----------------------------------------


label_values = st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.just({})


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    labels=st.dictionaries(st.text(max_size=300), label_values, max_size=6)
    | st.integers()
    | st.none(),
    expiry=st.none() | st.from_regex(r"\A[0-9]{1,20}[smhdw]\Z") | st.text(max_size=10),
)
def test_generated_labels_give_201_or_400(
    shared_client: TestClient, labels: Any, expiry: str | None
) -> None:
    if expiry is not None and isinstance(labels, dict):
        labels["quay.expires-after"] = expiry
    response, _ = push_config(shared_client, {"config": {"Labels": labels}}, tag="t")
    assert response.status_code in (201, 400), response.text
    if response.status_code == 400:
        assert response.json()["errors"][0]["code"] == "MANIFEST_INVALID"


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_any = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
v1_fields = st.fixed_dictionaries(
    {},
    optional={
        "created": json_any | st.sampled_from(["9999-12-31T23:00:00-05:00", "2020-01-01T00:00Z"]),
        "author": json_any,
        "comment": json_any,
        "container_config": json_any | st.fixed_dictionaries({"Cmd": json_any}),
        "throwaway": json_any,
        "Size": json_any,
        "architecture": json_any,
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(base=v1_fields, top=v1_fields)
def test_generated_schema1_history_gives_201_or_400(
    shared_client: TestClient, base: dict[str, Any], top: dict[str, Any]
) -> None:
    layer = b"schema1 fuzz layer"
    digest = upload(shared_client, NAME, layer)
    base_id, top_id = "b" * 64, "c" * 64
    body = json.dumps(
        {
            "schemaVersion": 1,
            "name": NAME,
            "tag": "fuzz",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": digest}, {"blobSum": digest}],
            "history": [
                {"v1Compatibility": json.dumps({**top, "id": top_id, "parent": base_id})},
                {"v1Compatibility": json.dumps({**base, "id": base_id})},
            ],
        }
    ).encode()
    response = put_manifest(
        shared_client, NAME, "fuzz", body, "application/vnd.docker.distribution.manifest.v1+json"
    )
    assert response.status_code in (201, 400), response.text


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "created": json_any,
                "created_by": json_any,
                "author": json_any,
                "comment": json_any,
                "empty_layer": json_any,
            },
        ),
        max_size=4,
    )
    | json_any,
    extra=st.dictionaries(st.sampled_from(["architecture", "config", "created", "os"]), json_any),
)
def test_generated_config_history_gives_201_or_400_and_a_schema1_view_or_404(
    shared_client: TestClient, history: Any, extra: dict[str, Any]
) -> None:
    config = {**extra, "history": history}
    response, _ = push_config(shared_client, config, tag="gen")
    assert response.status_code in (201, 400), response.text
    if response.status_code == 201:
        pulled = shared_client.get(f"/v2/{NAME}/manifests/gen", headers={"Accept": SCHEMA1_SIGNED})
        assert pulled.status_code in (200, 404), pulled.text
