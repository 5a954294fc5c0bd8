"""The REST API against its own OpenAPI document, with schemathesis: every operation, with
generated inputs, as a superuser, an ordinary user and anonymously, on seeded data (half
the cases address a real repository, so they reach more than the 404s): no 5xx, only
documented statuses, bodies and headers as the document says."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient
from tests.http.v2.helpers import image, put_manifest

from moorage.app import Application, build
from moorage.config import load_settings

PASSWORD = "schemathesis-password-3d"
EXAMPLES = int(os.environ.get("MOORAGE_SCHEMATHESIS_EXAMPLES", "30"))


def _basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def application(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Application]:
    previous = os.environ.get("MOORAGE_AUTH__ENABLED")
    os.environ["MOORAGE_AUTH__ENABLED"] = "true"
    try:
        app = build(load_settings(data_dir=tmp_path_factory.mktemp("schemathesis") / "data"))
    finally:
        if previous is None:
            del os.environ["MOORAGE_AUTH__ENABLED"]
        else:
            os.environ["MOORAGE_AUTH__ENABLED"] = previous
    app.accounts.create_user("root", PASSWORD, superuser=True)
    app.accounts.create_user("alice", PASSWORD)
    app.accounts.create_organization("acme", admin="alice")
    with TestClient(app.asgi) as client:
        client.headers["Authorization"] = _basic("alice")
        for tag, layer in (("latest", b"one"), ("v1", b"two")):
            body, media_type = image(client, "acme/app", [layer], labels={"k": tag})
            assert put_manifest(client, "acme/app", tag, body, media_type).status_code == 201
    yield app
    app.close()


@pytest.fixture(scope="module")
def api_schema(application: Application) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", application.asgi)


WHO = (_basic("root"), _basic("alice"), "")


def _check(case: Any) -> None:
    seed = hashlib.sha256(repr((case.path_parameters, case.query, case.body)).encode()).digest()
    if seed[0] % 2 and case.path_parameters and "repository" in case.path_parameters:
        case.path_parameters["namespace"] = "acme"
        case.path_parameters["repository"] = "app"
    response = case.call(headers={"Authorization": WHO[seed[1] % len(WHO)]})
    assert response.status_code < 500, (case.as_curl_command(), response.text)
    case.validate_response(response)


def test_every_operation_keeps_to_the_document(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 17
    for operation in operations:

        @given(operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            _check(case)

        check()
