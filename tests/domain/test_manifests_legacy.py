"""schema2/OCI → V1 chain (Quay's id scheme) and schema1 conversion."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from moorage.domain.digest import EMPTY_LAYER_DIGEST
from moorage.domain.errors import ManifestError
from moorage.domain.manifests import (
    Descriptor,
    Schema1Signer,
    legacy_chain_from_config,
    parse_manifest,
    schema1_from_image,
)
from moorage.domain.media_types import DOCKER_SCHEMA1_SIGNED_MANIFEST

LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@pytest.fixture(scope="module")
def signer() -> Schema1Signer:
    return Schema1Signer.generate()


def layer(seed: str, size: int = 100, **extra: Any) -> Descriptor:
    return Descriptor(LAYER, "sha256:" + hashlib.sha256(seed.encode()).hexdigest(), size, **extra)


HISTORY: list[dict[str, Any]] = [
    {
        "created": "2018-04-03T18:37:09.284840891Z",
        "created_by": "/bin/sh -c #(nop) ADD file:x in / ",
    },
    {
        "created": "2018-04-03T18:37:09.613317719Z",
        "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
        "empty_layer": True,
    },
    {"created": "2018-04-16T10:37:44.418262777Z", "created_by": "sh", "author": "bob"},
    {"created_by": "echo héllo", "comment": "unicode", "created": "2018-04-16T10:41:19Z"},
]
LAYERS = [layer("l0", 10), layer("l1", 20), layer("l2", 30)]


def config(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "architecture": "arm64",
        "config": {"Cmd": ["sh"], "Labels": {"a": "b"}},
        "container_config": {"Cmd": ["/bin/sh", "-c", "build"]},
        "created": "2018-04-16T10:41:19.079522722Z",
        "history": HISTORY,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64] * 3},
    }
    body.update(overrides)
    return body


def cfg_bytes(**overrides: Any) -> bytes:
    return json.dumps(config(**overrides), indent=2).encode()


def expected_ids(history: list[dict[str, Any]], layers: list[Descriptor]) -> list[str]:
    """Quay's scheme, written out independently of the implementation."""
    running = hashlib.sha256()
    ids = []
    remaining = iter(layers)
    for index, entry in enumerate(history):
        digest = EMPTY_LAYER_DIGEST if entry.get("empty_layer") else next(remaining).digest
        running.update(json.dumps(entry).encode("utf-8"))
        running.update(b"|" + str(index).encode() + b"|" + digest.encode() + b"||")
        ids.append(running.hexdigest())
    return ids


def test_ids_match_quay_scheme() -> None:
    chain = legacy_chain_from_config(cfg_bytes(), LAYERS)
    assert [entry.id for entry in chain] == expected_ids(HISTORY, LAYERS)


def test_known_value_for_single_entry() -> None:
    entry = {"created": "2020-01-01T00:00:00Z", "created_by": "ADD x"}
    (only,) = legacy_chain_from_config(cfg_bytes(history=[entry]), [LAYERS[0]])
    text = '{"created": "2020-01-01T00:00:00Z", "created_by": "ADD x"}'
    fed = f"{text}|0|{LAYERS[0].digest}||".encode()
    assert only.id == hashlib.sha256(fed).hexdigest()
    assert only.parent is None


def test_ids_depend_on_key_order_of_history_entries() -> None:
    reordered = [dict(reversed(list(entry.items()))) for entry in HISTORY]
    a = legacy_chain_from_config(cfg_bytes(), LAYERS)
    b = legacy_chain_from_config(cfg_bytes(history=reordered), LAYERS)
    assert a[0].id != b[0].id
    assert [e.id for e in b] == expected_ids(reordered, LAYERS)


def test_chain_is_deterministic_and_linked() -> None:
    first = legacy_chain_from_config(cfg_bytes(), LAYERS)
    second = legacy_chain_from_config(cfg_bytes(), LAYERS)
    assert first == second
    assert len(first) == 4
    assert first[0].parent is None
    assert [e.parent for e in first[1:]] == [e.id for e in first[:-1]]
    assert len({e.id for e in first}) == 4


def test_empty_layer_entries_use_the_empty_tar() -> None:
    chain = legacy_chain_from_config(cfg_bytes(), LAYERS)
    assert [e.blob_digest for e in chain] == [
        LAYERS[0].digest,
        EMPTY_LAYER_DIGEST,
        LAYERS[1].digest,
        LAYERS[2].digest,
    ]
    assert [e.throwaway for e in chain] == [False, True, False, False]
    assert [e.size for e in chain] == [10, 32, 20, 30]
    assert json.loads(chain[1].v1_json)["throwaway"] is True
    assert "throwaway" not in json.loads(chain[0].v1_json)


def test_v1_json_of_lower_entries() -> None:
    chain = legacy_chain_from_config(cfg_bytes(), LAYERS)
    v1 = json.loads(chain[2].v1_json)
    assert v1 == {
        "id": chain[2].id,
        "parent": chain[1].id,
        "created": "2018-04-16T10:37:44.418262777Z",
        "author": "bob",
        "container_config": {"Cmd": ["sh"]},
        "Size": 20,
    }
    assert chain[2].command == '["sh"]'
    assert chain[2].author == "bob"
    assert chain[2].created == datetime(2018, 4, 16, 10, 37, 44, 418262, tzinfo=UTC)
    assert chain[0].v1_json == json.dumps(json.loads(chain[0].v1_json))


def test_v1_json_of_top_entry_carries_the_config() -> None:
    chain = legacy_chain_from_config(cfg_bytes(), LAYERS)
    top = json.loads(chain[-1].v1_json)
    assert "rootfs" not in top and "history" not in top
    assert top["id"] == chain[-1].id and top["parent"] == chain[-2].id
    assert top["config"] == {"Cmd": ["sh"], "Labels": {"a": "b"}}
    assert top["architecture"] == "arm64"
    # Config-level values win over the history entry's.
    assert top["created"] == "2018-04-16T10:41:19.079522722Z"
    assert top["container_config"] == {"Cmd": ["/bin/sh", "-c", "build"]}
    assert top["comment"] == "unicode"
    assert chain[-1].command == json.dumps(["/bin/sh", "-c", "build"])
    assert chain[-1].comment == "unicode"


def test_history_longer_than_layers_is_refused() -> None:
    with pytest.raises(ManifestError, match="no matching layer"):
        legacy_chain_from_config(cfg_bytes(), LAYERS[:2])


def test_history_shorter_than_layers_is_refused() -> None:
    with pytest.raises(ManifestError, match="covers 3 layers"):
        legacy_chain_from_config(cfg_bytes(), [*LAYERS, layer("extra")])


@pytest.mark.parametrize(
    "history",
    [
        "not a list",
        [{"created_by": "x"}, "entry"],
        [{"created_by": "x", "empty_layer": "yes"}],
    ],
)
def test_malformed_history_is_refused(history: object) -> None:
    with pytest.raises(ManifestError, match="history"):
        legacy_chain_from_config(cfg_bytes(history=history), LAYERS[:1])


def test_malformed_config_is_refused() -> None:
    with pytest.raises(ManifestError):
        legacy_chain_from_config(b"[1, 2]", LAYERS)
    with pytest.raises(ManifestError):
        legacy_chain_from_config(b"{oops", LAYERS)


def test_config_without_history_synthesizes_one_entry_per_layer() -> None:
    body = config()
    del body["history"]
    chain = legacy_chain_from_config(json.dumps(body).encode(), LAYERS)
    running = hashlib.sha256()
    ids = []
    for item in LAYERS:
        running.update(f"{item.digest}||".encode())
        ids.append(running.hexdigest())
    assert [e.id for e in chain] == ids
    assert [e.blob_digest for e in chain] == [item.digest for item in LAYERS]
    assert json.loads(chain[0].v1_json) == {"id": ids[0], "Size": 10}
    assert json.loads(chain[-1].v1_json)["config"]["Labels"] == {"a": "b"}
    with pytest.raises(ManifestError):
        legacy_chain_from_config(json.dumps(body).encode(), [])


def test_schema1_from_image_round_trips(signer: Schema1Signer) -> None:
    data = schema1_from_image("ns/app", "v2", cfg_bytes(), LAYERS, signer)
    parsed = parse_manifest(data, DOCKER_SCHEMA1_SIGNED_MANIFEST)
    chain = legacy_chain_from_config(cfg_bytes(), LAYERS)
    assert parsed.schema1 is not None
    assert parsed.schema1.entries == chain
    assert parsed.schema1.architecture == "arm64"
    assert (parsed.schema1.name, parsed.schema1.tag) == ("ns/app", "v2")
    assert [d.digest for d in parsed.layers] == [e.blob_digest for e in chain]
    body = json.loads(data)
    assert body["fsLayers"][0]["blobSum"] == LAYERS[2].digest
    assert body["fsLayers"][-1]["blobSum"] == LAYERS[0].digest


def test_schema1_from_image_digest_is_stable(signer: Schema1Signer) -> None:
    first = schema1_from_image("ns/app", "v2", cfg_bytes(), LAYERS, signer)
    second = schema1_from_image("ns/app", "v2", cfg_bytes(), LAYERS, Schema1Signer.generate())
    kind = DOCKER_SCHEMA1_SIGNED_MANIFEST
    assert first != second
    assert parse_manifest(first, kind).digest == parse_manifest(second, kind).digest


def test_schema1_from_image_defaults_architecture(signer: Schema1Signer) -> None:
    body = config()
    del body["architecture"]
    data = schema1_from_image("ns/app", "v2", json.dumps(body).encode(), LAYERS, signer)
    assert json.loads(data)["architecture"] == "amd64"


def test_schema1_from_image_refuses_remote_layers(signer: Schema1Signer) -> None:
    remote = [LAYERS[0], LAYERS[1], layer("l2", 30, urls=("https://example.com/l2",))]
    with pytest.raises(ManifestError, match="remote"):
        schema1_from_image("ns/app", "v2", cfg_bytes(), remote, signer)


# --- bounded work (issue 11) -------------------------------------------------------------------


def test_a_chain_longer_than_the_v1_limit_is_not_made() -> None:
    """45,000 empty history entries in 1 MiB once cost 149 s of pushing (each V1 image
    stores its ancestry); past the limit the image simply has no V1 view."""
    from moorage.domain.manifests.schema1 import MAX_V1_CHAIN

    history = [{"empty_layer": True}] * MAX_V1_CHAIN + [{"created_by": "top"}]
    with pytest.raises(ManifestError, match=rf"more than a V1 chain \({MAX_V1_CHAIN}\)"):
        legacy_chain_from_config(cfg_bytes(history=history), [layer("top")])
    layers = [layer(f"l{i}") for i in range(MAX_V1_CHAIN + 1)]
    with pytest.raises(ManifestError, match="more than a V1 chain"):
        legacy_chain_from_config(cfg_bytes(history=[]), layers)
    at_limit = history[1:]
    assert len(legacy_chain_from_config(cfg_bytes(history=at_limit), [layer("top")])) == 1000


def test_the_top_entry_copies_the_config_without_changing_it() -> None:
    document = config()
    before = json.dumps(document)
    entries = legacy_chain_from_config(document, [layer("a"), layer("b"), layer("c")])
    assert json.dumps(document) == before  # a shallow copy, and still the whole config
    top = json.loads(entries[-1].v1_json)
    assert top["config"] == document["config"] and "history" not in top
