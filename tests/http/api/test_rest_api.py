"""The REST API (/api/v1) in-process with auth on: every endpoint with its errors and its
permissions (owner, team member, robot, another user, anonymous on public and private),
over an app built by `app.build` on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.http.v2.helpers import image, put_manifest, sha256

from moorage.app import Application, build
from moorage.config import load_settings
from moorage.domain.access import Role
from moorage.domain.accounts import SubjectKind
from moorage.domain.records import Visibility

PASSWORD = "api-test-password-5e1f"


def basic(user: str, secret: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


@dataclass
class World:
    app: Application
    client: TestClient
    robot: dict[str, str]
    v1: str
    v2: str
    media_type: str

    def as_(self, who: str | None) -> dict[str, str]:
        if who is None:
            return {"Authorization": ""}
        if who == "robot":
            return self.robot
        return basic(who)


@pytest.fixture(params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setenv("MOORAGE_AUTH__ENABLED", "true")
    database: dict[str, object] = {}
    if request.param == "postgres":
        database = {"database_url": request.getfixturevalue("fresh_postgres_url")}
        database["auto_migrate"] = True
    app = build(load_settings(data_dir=tmp_path / "data", **database))
    accounts = app.accounts
    for user in ("alice", "bob", "carol", "dave"):
        accounts.create_user(user, PASSWORD)
    accounts.create_user("root", PASSWORD, superuser=True)
    accounts.create_organization("acme", admin="alice")
    accounts.create_team("acme", "devs", "member")
    accounts.add_team_member("acme", "devs", "carol")
    robot, secret = accounts.create_robot("acme", "ci")
    with TestClient(app.asgi, raise_server_exceptions=False) as client:
        client.headers.update(basic("alice"))
        body1, media_type = image(client, "acme/app", [b"first layer"], labels={"team": "core"})
        assert put_manifest(client, "acme/app", "latest", body1, media_type).status_code == 201
        body2, _ = image(client, "acme/app", [b"second layer"])
        assert put_manifest(client, "acme/app", "latest", body2, media_type).status_code == 201
        accounts.grant("acme/app", SubjectKind.TEAM, "devs", Role.WRITE)
        accounts.grant("acme/app", SubjectKind.ROBOT, robot.name, Role.READ)
        accounts.grant("acme/app", SubjectKind.USER, "dave", Role.READ)
        yield World(
            app, client, basic(robot.name, secret), sha256(body1), sha256(body2), media_type
        )
    app.close()


REPO = "/api/v1/repository/acme/app"


def _error(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) >= {"status", "error_type", "title", "detail", "error_message"}
    assert body["status"] == response.status_code  # type: ignore[attr-defined]
    return body  # type: ignore[no-any-return]


# -- who may read ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("carol", 200), ("robot", 200), ("dave", 200), ("bob", 404), (None, 401)],
)
def test_a_private_repository_is_read_by_those_with_a_grant_only(
    world: World, who: str | None, status: int
) -> None:
    response = world.client.get(REPO, headers=world.as_(who))
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["tag_count"] == 1 and response.json()["is_public"] is False
    else:
        assert _error(response)["error_type"] in ("not_found", "invalid_token")


def test_another_user_cannot_tell_a_private_repository_from_a_missing_one(world: World) -> None:
    hidden = world.client.get(REPO, headers=basic("bob"))
    missing = world.client.get("/api/v1/repository/acme/nothing", headers=basic("bob"))
    assert hidden.status_code == missing.status_code == 404
    assert _error(hidden)["error_type"] == _error(missing)["error_type"] == "not_found"
    tags = world.client.get(REPO + "/tag/", headers=basic("bob"))
    assert tags.status_code == 404


def test_a_public_repository_is_read_by_anyone(world: World) -> None:
    world.app.accounts.set_visibility("acme/app", Visibility.PUBLIC)
    for who in (None, "bob"):
        response = world.client.get(REPO + "/tag/", headers=world.as_(who))
        assert response.status_code == 200, response.text
    refused = world.client.delete(REPO + "/tag/latest", headers=basic("bob"))
    assert refused.status_code == 403 and _error(refused)["error_type"] == "insufficient_scope"


def test_the_repository_list_shows_what_the_caller_may_read(world: World) -> None:
    def names(who: str | None) -> list[str]:
        response = world.client.get("/api/v1/repository", headers=world.as_(who))
        assert response.status_code == 200, response.text
        return [f"{r['namespace']}/{r['name']}" for r in response.json()["repositories"]]

    assert names("alice") == ["acme/app"]
    assert names("bob") == [] and names(None) == []
    world.app.accounts.set_visibility("acme/app", Visibility.PUBLIC)
    assert names(None) == ["acme/app"]


def test_the_repository_list_pages_and_filters(world: World) -> None:
    for name in ("one", "two", "three", "web"):
        created = world.client.post(
            "/api/v1/repository", json={"namespace": "alice", "repository": name}
        )
        assert created.status_code == 201, created.text
    seen: list[str] = []
    url = "/api/v1/repository?namespace=alice&limit=2"
    while True:
        page = world.client.get(url).json()
        assert len(page["repositories"]) <= 2
        seen += [r["name"] for r in page["repositories"]]
        if not page["next_page"]:
            break
        url = f"/api/v1/repository?namespace=alice&limit=2&next_page={page['next_page']}"
    assert seen == ["one", "three", "two", "web"]
    filtered = world.client.get("/api/v1/repository?filter=t").json()["repositories"]
    assert [r["name"] for r in filtered] == ["three", "two"]
    bad = world.client.get("/api/v1/repository?next_page=%%%")
    assert bad.status_code == 400 and _error(bad)["field"] == "next_page"


# -- repositories ---------------------------------------------------------------------------


def test_create_a_repository_where_the_caller_may(world: World) -> None:
    made = world.client.post(
        "/api/v1/repository",
        json={"namespace": "acme", "repository": "tools", "visibility": "public"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["is_public"] is True and made.json()["tag_count"] == 0
    again = world.client.post(
        "/api/v1/repository", json={"namespace": "acme", "repository": "tools"}
    )
    assert again.status_code == 409 and _error(again)["error_type"] == "conflict"
    elsewhere = world.client.post(
        "/api/v1/repository", json={"namespace": "bob", "repository": "x"}
    )
    assert elsewhere.status_code == 403
    assert world.client.get("/api/v1/repository/bob/x", headers=basic("bob")).status_code == 404
    anonymous = world.client.post(
        "/api/v1/repository",
        json={"namespace": "acme", "repository": "y"},
        headers={"Authorization": ""},
    )
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b'{"namespace": 5}', b'{"namespace": "acme"}', b"x" * 70000]
)
def test_a_bad_body_is_a_400_naming_the_field(world: World, body: bytes) -> None:
    response = world.client.post("/api/v1/repository", content=body)
    assert response.status_code == 400, response.text
    assert _error(response)["error_type"] == "invalid_request"
    assert "field" in response.json()


def test_visibility_and_state_need_admin(world: World) -> None:
    for who in ("carol", "robot", "dave"):
        refused = world.client.post(
            REPO + "/changevisibility", json={"visibility": "public"}, headers=world.as_(who)
        )
        assert refused.status_code == 403, (who, refused.text)
    public = world.client.post(REPO + "/changevisibility", json={"visibility": "public"})
    assert public.status_code == 200 and public.json()["is_public"] is True
    read_only = world.client.put(REPO + "/changestate", json={"state": "READ_ONLY"})
    assert read_only.json()["state"] == "READ_ONLY"
    # Nothing writes now: neither the API nor a push.
    assert world.client.delete(REPO + "/tag/latest").status_code == 403
    body, media_type = image(world.client, "acme/other", [b"x"])
    pushed = put_manifest(world.client, "acme/app", "v9", body, media_type)
    assert pushed.status_code in (401, 403, 404, 405), pushed.text
    assert world.client.put(REPO + "/changestate", json={"state": "NORMAL"}).status_code == 200
    assert world.client.delete(REPO + "/tag/latest").status_code == 204


def test_delete_a_repository(world: World) -> None:
    assert world.client.delete(REPO, headers=basic("carol")).status_code == 403
    assert world.client.delete(REPO).status_code == 204
    assert world.client.get(REPO).status_code == 404
    assert world.client.get("/v2/acme/app/manifests/latest").status_code == 404
    assert world.client.get("/api/v1/repository").json()["repositories"] == []
    catalog = world.client.get("/v2/_catalog").json()
    assert catalog["repositories"] == []
    # The name is free again: a push makes a new, empty repository.
    body, media_type = image(world.client, "acme/app", [b"fresh"])
    assert put_manifest(world.client, "acme/app", "new", body, media_type).status_code == 201
    assert world.client.get(REPO).json()["tag_count"] == 1


# -- tags -------------------------------------------------------------------------------------


def test_tag_history_lists_every_version_newest_first(world: World) -> None:
    history = world.client.get(REPO + "/tag/?specificTag=latest").json()
    assert [t["manifest_digest"] for t in history["tags"]] == [world.v2, world.v1]
    assert history["tags"][0]["end_ts"] is None and history["tags"][1]["end_ts"] is not None
    active = world.client.get(REPO + "/tag/?onlyActiveTags=true").json()
    assert [t["manifest_digest"] for t in active["tags"]] == [world.v2]
    paged = world.client.get(REPO + "/tag/?limit=1").json()
    assert len(paged["tags"]) == 1 and paged["has_additional"] is True
    for bad in ("limit=0", "limit=101", "page=-1", "limit=%C2%B2", "onlyActiveTags=maybe"):
        response = world.client.get(REPO + "/tag/?" + bad)
        assert response.status_code == 400, bad


def test_restore_puts_the_tag_back_and_pulls_see_it(world: World) -> None:
    restored = world.client.post(
        REPO + "/tag/latest/restore", json={"manifest_digest": world.v1}, headers=basic("carol")
    )
    assert restored.status_code == 200, restored.text
    assert restored.json()["reversion"] is True
    pulled = world.client.get("/v2/acme/app/manifests/latest", headers={"Accept": world.media_type})
    assert sha256(pulled.content) == world.v1
    never = world.client.post(REPO + "/tag/other/restore", json={"manifest_digest": world.v1})
    assert never.status_code == 404 and _error(never)["error_type"] == "not_found"
    refused = world.client.post(
        REPO + "/tag/latest/restore", json={"manifest_digest": world.v2}, headers=world.robot
    )
    assert refused.status_code == 403


def test_a_deleted_tag_is_restored(world: World) -> None:
    assert world.client.delete(REPO + "/tag/latest").status_code == 204
    assert world.client.get("/v2/acme/app/manifests/latest").status_code == 404
    assert world.client.delete(REPO + "/tag/latest").status_code == 404
    back = world.client.post(REPO + "/tag/latest/restore", json={"manifest_digest": world.v2})
    assert back.status_code == 200, back.text
    pulled = world.client.get("/v2/acme/app/manifests/latest", headers={"Accept": world.media_type})
    assert sha256(pulled.content) == world.v2


def test_moving_a_tag_is_a_compare_and_set(world: World) -> None:
    lost = world.client.put(
        REPO + "/tag/latest",
        json={"manifest_digest": world.v1, "expected_manifest_digest": world.v1},
    )
    assert lost.status_code == 409 and _error(lost)["error_type"] == "conflict"
    won = world.client.put(
        REPO + "/tag/latest",
        json={"manifest_digest": world.v1, "expected_manifest_digest": world.v2},
    )
    assert won.status_code == 201 and won.json()["manifest_digest"] == world.v1
    created = world.client.put(
        REPO + "/tag/stable", json={"manifest_digest": world.v2, "expected_manifest_digest": ""}
    )
    assert created.status_code == 201
    taken = world.client.put(
        REPO + "/tag/stable", json={"manifest_digest": world.v1, "expected_manifest_digest": ""}
    )
    assert taken.status_code == 409
    unknown = world.client.put(REPO + "/tag/x", json={"manifest_digest": "sha256:" + "a" * 64})
    assert unknown.status_code == 404
    for bad in ({}, {"manifest_digest": "nope"}, {"expected_manifest_digest": world.v1}):
        assert world.client.put(REPO + "/tag/x", json=bad).status_code == 400, bad
    assert (
        world.client.put(REPO + "/tag/..bad", json={"manifest_digest": world.v1}).status_code == 400
    )


def test_an_expiration_is_clamped_and_shows_in_the_tag_list(world: World) -> None:
    start = world.client.get(REPO + "/tag/?onlyActiveTags=true").json()["tags"][0]["start_ts"]
    far = world.client.put(REPO + "/tag/latest", json={"expiration": start + 10 * 365 * 86400})
    assert far.status_code == 201, far.text
    assert far.json()["end_ts"] == start + 104 * 7 * 86400  # at most 104 weeks
    near = world.client.put(REPO + "/tag/latest", json={"expiration": start + 60})
    assert near.json()["end_ts"] == start + 3600  # at least an hour
    listed = world.client.get(REPO + "/tag/?onlyActiveTags=true").json()["tags"][0]
    assert listed["expiration"] is not None
    never = world.client.put(REPO + "/tag/latest", json={"expiration": None})
    assert never.json()["end_ts"] is None


# -- manifests and labels -------------------------------------------------------------------


def test_a_manifest_with_its_layers_and_placements_for_superusers(world: World) -> None:
    mine = world.client.get(f"{REPO}/manifest/{world.v1}").json()
    assert mine["digest"] == world.v1 and not mine["is_manifest_list"]
    assert [layer["blob_digest"] for layer in mine["layers"]] == [sha256(b"first layer")]
    assert mine["layers"][0]["placements"] is None
    root = world.client.get(f"{REPO}/manifest/{world.v1}", headers=basic("root")).json()
    assert root["layers"][0]["placements"] == ["local"]
    assert world.client.get(f"{REPO}/manifest/sha256:{'b' * 64}").status_code == 404
    assert world.client.get(f"{REPO}/manifest/bogus").status_code == 400
    security = world.client.get(f"{REPO}/manifest/{world.v1}/security").json()
    assert security["status"] in ("queued", "unsupported")


def test_labels_from_the_image_are_read_only_and_api_labels_come_and_go(world: World) -> None:
    url = f"{REPO}/manifest/{world.v1}/labels"
    labels = world.client.get(url).json()["labels"]
    assert [(x["key"], x["value"], x["source_type"]) for x in labels] == [
        ("team", "core", "manifest")
    ]
    immutable = world.client.delete(f"{url}/{labels[0]['id']}")
    assert immutable.status_code == 403
    added = world.client.post(
        url, json={"key": "owner", "value": '{"a": 1}'}, headers=basic("carol")
    )
    assert added.status_code == 201, added.text
    assert added.json()["media_type"] == "application/json"
    assert added.headers["Location"].endswith(added.json()["id"])
    assert world.client.get(f"{url}?filter=own").json()["labels"][0]["key"] == "owner"
    assert world.client.get(f"{url}/{added.json()['id']}").status_code == 200
    reserved = world.client.post(url, json={"key": "com.docker.thing", "value": "x"})
    assert reserved.status_code == 400 and _error(reserved)["field"] == "key"
    assert (
        world.client.post(url, json={"key": "a", "value": "b"}, headers=world.robot).status_code
        == 403
    )
    assert world.client.delete(f"{url}/{added.json()['id']}").status_code == 204
    assert world.client.get(f"{url}/{added.json()['id']}").status_code == 404


# -- namespaces -------------------------------------------------------------------------------


def test_superusers_disable_and_enable_namespaces(world: World) -> None:
    url = "/api/v1/superuser/namespaces/acme"
    assert world.client.put(url, json={"enabled": False}).status_code == 403  # alice
    off = world.client.put(url, json={"enabled": False}, headers=basic("root"))
    assert off.status_code == 200 and off.json() == {"name": "acme", "enabled": False}
    assert world.client.get("/v2/acme/app/manifests/latest").status_code == 403
    on = world.client.put(url, json={"enabled": True}, headers=basic("root"))
    assert on.status_code == 200
    assert world.client.get("/v2/acme/app/tags/list").status_code == 200
    missing = world.client.put(
        "/api/v1/superuser/namespaces/nobody", json={"enabled": True}, headers=basic("root")
    )
    assert missing.status_code == 404


# -- the document -----------------------------------------------------------------------------


def test_the_openapi_document_describes_every_api_route(world: World) -> None:
    from moorage.http.routes import ROUTES

    document = world.client.get("/api/v1/openapi.json", headers={"Authorization": ""}).json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    api_routes = {
        (spec.method, spec.path.replace(":path}", "}"))
        for spec in ROUTES
        if spec.path.startswith("/api/") and spec.path != "/api/v1/openapi.json"
    }
    assert documented == api_routes


def test_a_tag_s_v1_image_chain(world: World) -> None:
    chain = world.client.get(REPO + "/tag/latest/images")
    assert chain.status_code == 200, chain.text
    images = chain.json()["images"]
    assert images, "a schema 2 push keeps a V1 chain (one image per layer)"
    assert images[0]["sort_index"] == len(images) - 1 and images[-1]["ancestors"] == "/"
    owned = world.client.get(REPO + "/tag/latest/images?owned=true").json()["images"]
    assert {i["id"] for i in owned} <= {i["id"] for i in images}
    assert world.client.get(REPO + "/tag/nothing/images").status_code == 404
    assert world.client.get(REPO + "/tag/latest/images", headers=basic("bob")).status_code == 404
