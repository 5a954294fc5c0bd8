"""The hot pulls (``http/hot.py``) answer exactly what the full application answers.

Every generated request (hot routes and near misses, every kind of caller, the headers that
change an answer) goes to the application twice, once through ``HotReads`` and once straight
to Starlette behind it, and the two answers must be byte-identical; and the hot layer must
really answer the plain cases itself, and never a refusal or an unusual request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from bench.inproc import http_scope
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from tests.http.v2.test_access_seam import (
    CONFIG,
    PASSWORDS,
    basic,
    digest_of,
    manifest_for,
    push_image,
    token,
)

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.domain.access import Role
from moorage.domain.accounts import SubjectKind
from moorage.domain.records import Visibility
from moorage.http.hot import HotReads

SECRET, OPEN, SHARED = "alice/secret", "alice/open", "alice/shared"
MANIFEST = manifest_for(CONFIG)
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Application, dict[str, str]]]:
    """alice's private, public and shared (bob reads) repositories; the callers' headers."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MOORAGE_AUTH__ENABLED", "true")
    app = build(load_settings(data_dir=tmp_path_factory.mktemp("hot") / "data"))
    for name, password in PASSWORDS.items():
        app.accounts.create_user(name, password)
    alice = basic("alice", PASSWORDS["alice"])
    with TestClient(app.asgi) as client:
        for repo in (SECRET, OPEN, SHARED):
            push_image(client, repo, alice)
        app.accounts.set_visibility(OPEN, Visibility.PUBLIC)
        app.accounts.grant(SHARED, SubjectKind.USER, "bob", Role.READ)
        bob = basic("bob", PASSWORDS["bob"])
        callers = {
            "anonymous": "",
            "alice basic": alice["Authorization"],
            "bob basic": bob["Authorization"],
            "wrong password": basic("alice", "nope")["Authorization"],
            "malformed basic": "Basic !!!",
            "alice token": "Bearer " + token(client, f"repository:{SECRET}:pull", alice),
            "bob token": "Bearer " + token(client, f"repository:{SHARED}:pull", bob),
            "bob token for secret": "Bearer " + token(client, f"repository:{SECRET}:pull", bob),
            "garbage token": "Bearer not.a.token",
            "empty bearer": "Bearer ",
        }
    try:
        yield app, callers
    finally:
        app.close()
        mp.undo()


def hot_and_full(app: Application) -> tuple[HotReads, Any]:
    hot = app.asgi.app  # RequestMiddleware(HotReads(Starlette))
    assert isinstance(hot, HotReads)
    return hot, hot.app


def call(app: Any, scope: dict[str, Any]) -> Answer:
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        # The request once, then nothing: a client that stays connected. (Answering the
        # request again forever spun a streaming response's disconnect listener.)
        nonlocal requested
        if requested:
            await anyio.sleep_forever()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await app(dict(scope), receive, send)

    anyio.run(run)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], sorted(start["headers"]), body


REPOS = [SECRET, OPEN, SHARED, "alice/missing", "bob/nothing", "ALICE/open", "alice/../open", ""]
TARGETS = [
    "manifests/v1",
    "manifests/missing",
    "manifests/" + digest_of(MANIFEST),
    "manifests/" + digest_of(CONFIG),
    "manifests/sha256:abc",
    "manifests/..%2Fv1",
    "blobs/" + digest_of(CONFIG),
    "blobs/" + digest_of(b"never pushed"),
    "blobs/sha256:zz",
    "blobs/..",
    "tags/list",
    "blobs/uploads/",
    "referrers/" + digest_of(MANIFEST),
]
ACCEPTS = [
    None,
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "*/*",
    "text/plain",
]


@given(
    method=st.sampled_from(["GET", "HEAD"]),
    repo=st.sampled_from(REPOS),
    target=st.sampled_from(TARGETS),
    caller=st.sampled_from(
        [
            "anonymous",
            "alice basic",
            "bob basic",
            "malformed basic",
            "alice token",
            "bob token",
            "bob token for secret",
            "garbage token",
            "empty bearer",
        ]
    ),
    accept=st.sampled_from(ACCEPTS),
    if_none_match=st.booleans(),
    ranged=st.booleans(),
    query=st.sampled_from(["", "n=1"]),
)
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_hot_answers_are_the_full_applications(
    world: tuple[Application, dict[str, str]],
    method: str,
    repo: str,
    target: str,
    caller: str,
    accept: str | None,
    if_none_match: bool,
    ranged: bool,
    query: str,
) -> None:
    """(Wrong passwords are left out: each costs a throttled login, and the throttle then
    answers 429, as it should, whichever path asks.)"""
    app, callers = world
    hot, full = hot_and_full(app)
    headers = {"Host": "registry.test"}
    if callers[caller]:
        headers["Authorization"] = callers[caller]
    if accept:
        headers["Accept"] = accept
    if if_none_match:
        headers["If-None-Match"] = f'"{digest_of(MANIFEST)}"'
    if ranged:
        headers["Range"] = "bytes=0-3"
    scope = http_scope(method, f"/v2/{repo}/{target}", headers, query)
    # The full application first: a pull it allows is remembered, so the hot layer's turn
    # meets the warm caches that make it answer by itself.
    assert call(hot, scope) == call(full, scope) == call(hot, scope)


def test_the_plain_pulls_are_answered_by_the_hot_layer_and_nothing_else_is(
    world: tuple[Application, dict[str, str]],
) -> None:
    app, callers = world
    hot, full = hot_and_full(app)

    def answered_hot(method: str, path: str, caller: str, **extra: str) -> bool:
        headers = {"Authorization": callers[caller]} if callers[caller] else {}
        headers.update(extra)
        scope = http_scope(method, path, headers)
        call(full, scope)  # warms what the seam remembers, as any earlier pull would
        return hot._answer(dict(scope)) is not None

    manifest, blob = f"manifests/{digest_of(MANIFEST)}", f"blobs/{digest_of(CONFIG)}"
    for caller, repo in [
        ("anonymous", OPEN),
        ("alice basic", SECRET),
        ("bob basic", SHARED),
        ("alice token", SECRET),
        ("bob token", SHARED),
    ]:
        for method, target in [
            ("GET", "manifests/v1"),
            ("HEAD", "manifests/v1"),
            ("GET", manifest),
            ("HEAD", blob),
            ("GET", "tags/list"),
        ]:
            assert answered_hot(method, f"/v2/{repo}/{target}", caller), (caller, repo, target)
    refused_or_unusual = [
        ("GET", f"/v2/{SECRET}/manifests/v1", "anonymous", {}),
        ("GET", f"/v2/{SECRET}/manifests/v1", "bob basic", {}),
        ("GET", f"/v2/{SECRET}/manifests/v1", "bob token", {}),
        ("GET", f"/v2/{SECRET}/manifests/v1", "bob token for secret", {}),
        ("GET", f"/v2/{SECRET}/manifests/v1", "wrong password", {}),
        ("GET", f"/v2/{SECRET}/manifests/v1", "garbage token", {}),
        ("GET", f"/v2/{OPEN}/{blob}", "anonymous", {}),  # a blob GET streams: not hot
        ("HEAD", f"/v2/{OPEN}/{blob}", "anonymous", {"Range": "bytes=0-1"}),
        ("GET", f"/v2/{OPEN}/manifests/v1", "anonymous", {"If-None-Match": "x"}),
    ]
    refused_or_unusual.append(  # a missing tag may be an expired one: the full path decides
        ("GET", f"/v2/{OPEN}/manifests/missing", "anonymous", {})
    )
    for method, path, caller, extra in refused_or_unusual:
        assert not answered_hot(method, path, caller, **extra), (method, path, caller, extra)
    # What is not there yet is answered too (a push HEADs every layer before uploading it),
    # by the one error table: the bodies are the full application's (the property above).
    for method, path, caller in [
        ("GET", f"/v2/{OPEN}/manifests/{digest_of(b'never pushed')}", "anonymous"),
        ("HEAD", f"/v2/{OPEN}/blobs/{digest_of(b'never pushed')}", "anonymous"),
        ("HEAD", f"/v2/alice/missing/blobs/{digest_of(CONFIG)}", "alice basic"),
    ]:
        assert answered_hot(method, path, caller), path


def test_a_disabled_namespace_is_refused_even_when_its_pulls_are_remembered(
    world: tuple[Application, dict[str, str]],
) -> None:
    app, _callers = world
    hot, full = hot_and_full(app)
    scope = http_scope("GET", f"/v2/{OPEN}/manifests/v1", {})
    assert call(hot, scope)[0] == 200  # remembered as allowed from here on
    app.accounts.set_namespace_enabled("alice", False)
    try:
        status, _headers, body = call(hot, scope)
        assert status == 403 and b"DENIED" in body
        assert call(hot, scope) == call(full, scope)  # whichever path answers, the same 403
    finally:
        app.accounts.set_namespace_enabled("alice", True)


def test_a_moved_tag_answers_its_new_manifest_at_once(
    world: tuple[Application, dict[str, str]],
) -> None:
    app, callers = world
    hot, _full = hot_and_full(app)
    alice = {"Authorization": callers["alice basic"]}
    other_config = CONFIG.replace(b"amd64", b"arm64")
    other = manifest_for(other_config)
    scope = http_scope("GET", f"/v2/{OPEN}/manifests/moving", {})
    with TestClient(app.asgi) as client:
        push_image(client, OPEN, alice, tag="moving")
        assert call(hot, scope)[2] == MANIFEST
        uploaded = client.post(
            f"/v2/{OPEN}/blobs/uploads/?digest={digest_of(other_config)}",
            content=other_config,
            headers=alice,
        )
        assert uploaded.status_code == 201
        moved = client.put(
            f"/v2/{OPEN}/manifests/moving",
            content=other,
            headers={**alice, "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert moved.status_code == 201
    status, headers, body = call(hot, scope)
    assert (status, body) == (200, other)
    assert (b"docker-content-digest", digest_of(other).encode()) in headers
    assert hot._answer(dict(scope)) is not None
