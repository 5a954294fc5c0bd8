"""Hypothesis strategies for what a client controls: names, references, digests, numbers,
headers, query strings, and generated or mutated manifests and configs."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st
from tests.fuzz import seed

from moorage.domain.media_types import (
    DOCKER_SCHEMA1_MANIFEST,
    DOCKER_SCHEMA1_SIGNED_MANIFEST,
    DOCKER_SCHEMA2_CONFIG,
    DOCKER_SCHEMA2_MANIFEST,
    DOCKER_SCHEMA2_MANIFEST_LIST,
    OCI_EMPTY,
    OCI_IMAGE_CONFIG,
    OCI_IMAGE_INDEX,
    OCI_IMAGE_MANIFEST,
)

MANIFEST_TYPES = (
    OCI_IMAGE_MANIFEST,
    OCI_IMAGE_INDEX,
    DOCKER_SCHEMA2_MANIFEST,
    DOCKER_SCHEMA2_MANIFEST_LIST,
    DOCKER_SCHEMA1_MANIFEST,
    DOCKER_SCHEMA1_SIGNED_MANIFEST,
)
OTHER_TYPES = (
    DOCKER_SCHEMA2_CONFIG,
    OCI_IMAGE_CONFIG,
    OCI_EMPTY,
    seed.OCI_LAYER,
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/json",
    "text/plain",
    "*/*",
    "",
)
HUGE_NUMBER = "9" * 5000  # past Python's 4,300-digit int conversion limit

# -- scalars -------------------------------------------------------------------------------

# What a header can carry: latin-1 without control characters (the transport refuses those).
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
)
# Query values go through percent-encoding, so any code point can arrive.
query_text = st.text(max_size=40)

numbers = st.one_of(
    st.integers(0, 2**70).map(str),
    st.sampled_from(["0", str(2**63 - 1), str(2**63), str(2**64), HUGE_NUMBER, "0" * 30 + "1"]),
    st.sampled_from(["-1", "+1", "1.0", "0x10", " 1", "1 ", "1_0", "", "²", "¹³", "1e3"]),
)
unicode_numbers = st.one_of(numbers, st.sampled_from(["\u0661", "\u0663\u0662", "\uff11", "٣"]))

hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
digests = st.one_of(
    st.sampled_from(seed.KNOWN_DIGESTS),
    hex64.map("sha256:".__add__),
    hex64.map(lambda h: "sha256:" + h.upper()),
    st.text("0123456789abcdef", min_size=128, max_size=128).map("sha512:".__add__),
    st.text("0123456789abcdefABCDEF=_-", max_size=140).map("sha256:".__add__),
    st.sampled_from(
        [
            "sha256:../../x",
            "sha256:..%2F..%2Fx",
            "sha256:" + "a" * 63,
            "sha256:" + "a" * 65,
            "sha256:",
            "sha256",
            ":" + "a" * 64,
            "SHA256:" + "a" * 64,
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha384:" + "a" * 96,
            "blake3:" + "a" * 64,
            "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
            "sha256:" + "a" * 10_000,
        ]
    ),
    query_text,
)

tags = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    st.sampled_from(["latest", "multi", "a" * 128, "a" * 129, ".hidden", "-x", "x/y", "x:y"]),
    query_text,
)
references = st.one_of(tags, digests)

_component = st.from_regex(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*", fullmatch=True)
names = st.one_of(
    st.sampled_from([seed.REPO, seed.OTHER, "alpine", "library/alpine", "fuzz/app/sub/deep"]),
    st.lists(_component, min_size=1, max_size=4).map("/".join),
    st.sampled_from(
        [
            "Fuzz/App",
            "fuzz/../app",
            "fuzz//app",
            "fuzz/app/",
            "/fuzz/app",
            "fuzz/app/..",
            "fuzz/." + "a" * 10,
            "a",
            "fuzz/" + "a" * 300,
            "f" * 10_000,
            "fuzz/app%00",
            "fuzz/_catalog",
            "fuzz/blobs",
            "fuzz/manifests/x",
        ]
    ),
    query_text.filter(lambda text: text not in ("", ".", "..")),
)

# -- headers -------------------------------------------------------------------------------

ranges = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", numbers | st.just(""), numbers | st.just("")),
    st.builds(lambda a, b, c: f"{a}-{b}{c}", numbers, numbers, st.sampled_from(["", "/*", "/9"])),
    st.sampled_from(["bytes=0-1,3-4", "bytes=-", "bytes 0-1", "items=0-1", "bytes=0-1/2"]),
    header_text,
)
content_types = st.one_of(
    st.sampled_from(MANIFEST_TYPES + OTHER_TYPES),
    st.sampled_from(MANIFEST_TYPES).map(lambda media_type: media_type + "; charset=utf-8"),
    st.sampled_from(MANIFEST_TYPES).map(str.upper),
    header_text,
)
accepts = st.one_of(
    st.lists(st.sampled_from(MANIFEST_TYPES + OTHER_TYPES), max_size=5).map(", ".join),
    st.lists(
        st.builds(lambda m, q: f"{m};q={q}", st.sampled_from(MANIFEST_TYPES), numbers), max_size=3
    ).map(",".join),
    header_text,
)


def _header(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, bytes]]:
    return values.map(lambda value: {name: value.encode("latin-1", "replace")})


headers = st.lists(
    st.one_of(
        _header("Range", ranges),
        _header("Content-Range", ranges),
        _header("Content-Length", numbers),
        _header("Content-Type", content_types),
        _header("Accept", accepts),
        _header("If-None-Match", st.one_of(digests.map(lambda d: f'"{d}"'), header_text)),
        _header("X-Anything", header_text),
    ),
    max_size=4,
).map(lambda parts: {key: value for part in parts for key, value in part.items()})

queries = st.dictionaries(
    st.sampled_from(["n", "last", "mount", "from", "digest", "tag", "artifactType", "x"]),
    st.one_of(unicode_numbers, query_text, digests, names, tags),
    max_size=4,
)

# -- JSON documents ------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
sizes = st.one_of(
    st.integers(0, 10_000),
    st.sampled_from([len(seed.LAYER), len(seed.CONFIG), 2**63 - 1, 2**63, 2**70, -1]),
    st.sampled_from([True, 1.5, "10", None]),
)
_string_maps = st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3)
platforms = st.fixed_dictionaries(
    {"architecture": st.sampled_from(["amd64", "arm64", ""]), "os": st.just("linux")},
    optional={"variant": st.text(max_size=5), "os.features": st.lists(st.text(max_size=5))},
)


def descriptors(media_types: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"mediaType": media_types, "digest": digests, "size": sizes},
        optional={
            "urls": st.lists(st.text(max_size=20), max_size=2),
            "annotations": _string_maps,
            "platform": platforms,
            "artifactType": st.text(max_size=20),
            "data": st.sampled_from(["", "e30=", "not base64!"]),
        },
    )


CONFIG_TYPES = [OCI_IMAGE_CONFIG, DOCKER_SCHEMA2_CONFIG, OCI_EMPTY]
_any_type = st.sampled_from(MANIFEST_TYPES + OTHER_TYPES) | st.text(max_size=20)
images = st.fixed_dictionaries(
    {
        "schemaVersion": st.just(2),
        "mediaType": st.sampled_from([OCI_IMAGE_MANIFEST, DOCKER_SCHEMA2_MANIFEST]),
        "config": descriptors(
            st.sampled_from([OCI_IMAGE_CONFIG, DOCKER_SCHEMA2_CONFIG, OCI_EMPTY])
        ),
        "layers": st.lists(descriptors(_any_type), max_size=3),
    },
    optional={
        "subject": descriptors(st.sampled_from(MANIFEST_TYPES)),
        "annotations": _string_maps,
        "artifactType": st.text(max_size=20),
    },
)
indexes = st.fixed_dictionaries(
    {
        "schemaVersion": st.just(2),
        "mediaType": st.sampled_from([OCI_IMAGE_INDEX, DOCKER_SCHEMA2_MANIFEST_LIST]),
        "manifests": st.lists(descriptors(st.sampled_from(MANIFEST_TYPES)), max_size=3),
    },
    optional={"subject": descriptors(st.sampled_from(MANIFEST_TYPES)), "annotations": _string_maps},
)
v1_ids = st.one_of(hex64, st.text(max_size=70))
v1_entries = st.fixed_dictionaries(
    {"id": v1_ids},
    optional={
        "parent": v1_ids,
        "Size": sizes,
        "created": st.sampled_from(["2024-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "x"]),
        "comment": st.text(max_size=20),
        "author": st.text(max_size=20),
        "throwaway": json_scalars,
        "container_config": st.fixed_dictionaries({"Cmd": json_values}),
        "architecture": st.text(max_size=8),
    },
)
schema1s = st.builds(
    lambda name, tag, entries, layers, extra: {
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": "amd64",
        "fsLayers": [{"blobSum": digest} for digest in layers],
        "history": [{"v1Compatibility": json.dumps(entry)} for entry in entries],
        **extra,
    },
    names,
    tags,
    st.lists(v1_entries, min_size=1, max_size=3),
    st.lists(digests, min_size=1, max_size=3),
    st.one_of(
        st.just({}),
        st.fixed_dictionaries({"signatures": json_values}),
        st.fixed_dictionaries(
            {
                "signatures": st.lists(
                    st.fixed_dictionaries(
                        {
                            "header": st.fixed_dictionaries(
                                {"jwk": st.dictionaries(st.text(max_size=4), json_scalars)},
                                optional={"alg": st.sampled_from(["ES256", "RS256", "none"])},
                            ),
                            "signature": st.text(max_size=20),
                            "protected": st.text(max_size=40),
                        }
                    ),
                    min_size=1,
                    max_size=2,
                )
            }
        ),
    ),
)
configs = st.fixed_dictionaries(
    {"architecture": st.just("amd64"), "os": st.just("linux")},
    optional={
        "config": st.fixed_dictionaries(
            {},
            optional={
                "Labels": st.one_of(
                    st.dictionaries(st.text(max_size=30), json_scalars, max_size=4),
                    st.dictionaries(
                        st.sampled_from(["quay.expires-after", "org.x", ""]),
                        st.one_of(
                            st.sampled_from(["2h", "99999999999999w", "0s", "-1d", "1x", ""]),
                            numbers.map(lambda n: n[:30] + "w"),
                        ),
                        max_size=2,
                    ),
                    json_values,
                )
            },
        ),
        "rootfs": json_values,
        "history": json_values,
    },
)


# -- mutation ------------------------------------------------------------------------------

_DELETE = object()


def _slots(doc: Any, found: list[tuple[Any, Any]]) -> None:
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.append((doc, key))
            _slots(value, found)
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found.append((doc, index))
            _slots(value, found)


def mutate(doc: Any, edits: list[tuple[int, Any]]) -> Any:
    for position, replacement in edits:
        found: list[tuple[Any, Any]] = []
        _slots(doc, found)
        if not found:
            return doc
        container, key = found[position % len(found)]
        if replacement is _DELETE:
            del container[key]
        else:
            container[key] = replacement
    return doc


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


BYTE_MUTATIONS = st.sampled_from(
    (
        *("none", "none", "none", "truncate", "duplicate", "deep", "bigint", "bom"),
        *("nul", "latin1", "surrogate", "escapes"),
    )
)


def bytes_of(doc: Any, mutation: str, cut: int) -> bytes:
    text = json.dumps(doc)
    if mutation == "truncate":
        text = text[: cut % (len(text) + 1)]
    elif mutation == "duplicate" and text.startswith("{") and len(text) > 2:
        text = '{"schemaVersion": 2, ' + text[1:]
    elif mutation == "deep" and text.endswith("}"):
        text = text[:-1] + f', "x": {_deep(cut % 3 * 50_000 + 65)}}}'
    elif mutation == "bigint" and text.endswith("}"):
        text = text[:-1] + f', "x": {HUGE_NUMBER}}}'
    elif mutation == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    elif mutation == "nul":
        text = text.replace('"', '"\\u0000', 1)
    elif mutation == "surrogate":  # a lone surrogate: valid JSON, no UTF-8 form
        text = text.replace('"', '"\\ud800', 1 + cut % 7)
    elif mutation == "escapes":
        text = text.replace('"', '"\\u0000\\n\\t\\\\', 1 + cut % 7)
    elif mutation == "latin1":
        return text.encode("utf-8") + b"\xff"
    return text.encode("utf-8", "surrogatepass")


# Valid documents over the seeded content, so that mutations reach the checks behind the
# first ones (fresh objects each time: mutation edits them in place).
valid_documents = st.one_of(
    st.builds(seed.image_manifest),
    st.builds(seed.index_manifest, st.just(seed.IMAGE_DIGEST), st.just(len(seed.IMAGE))),
    st.builds(seed.schema1_manifest),
)
EDITS = st.lists(
    st.tuples(st.integers(0, 1000), st.one_of(json_values, st.just(_DELETE))), max_size=3
)
documents = st.one_of(valid_documents, images, indexes, schema1s, configs, json_values)
mutated_documents = st.builds(
    lambda doc, edits, mutation, cut: bytes_of(mutate(doc, edits), mutation, cut),
    documents,
    EDITS,
    BYTE_MUTATIONS,
    st.integers(0, 10_000),
)
bodies = st.one_of(mutated_documents, st.binary(max_size=200))

# Paths sent as they are: percent-escapes that are not UTF-8, NUL, dot segments.
raw_paths = st.sampled_from(
    [
        "/v2/fuzz/%ff/tags/list",
        "/v2/fuzz/app%00/tags/list",
        "/v2/fuzz/app/manifests/%ff%fe",
        "/v2/fuzz/app/manifests/%ED%A0%80",
        "/v2/fuzz/app/manifests/sha256:%2e%2e%2fx",
        "/v2/fuzz/app/blobs/sha256%3A" + "a" * 64,
        "/v2/fuzz/app/blobs/%00",
        "/v2/fuzz/app/blobs/uploads/%ff",
        "/v2/fuzz/app/blobs/uploads/..",
        "/v2/fuzz/app/referrers/%ff",
        "/v2/%2e%2e/fuzz/app/tags/list",
        "/v2/fuzz/app/../other/tags/list",
        "/v2/_catalog?n=%ff",
        "/v2/_catalog?n=%00",
        "/v2/_catalog?n=1&n=2",
        "/v2/fuzz/app/tags/list?last=%ff&n=%C2%B2",
        "/v2//fuzz/app/tags/list",
        "/v2/fuzz/app/manifests/",
        "/v2/fuzz/app/blobs/",
    ]
)
