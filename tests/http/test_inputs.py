"""Bounded, ASCII-only integers from headers and query strings (issue 11)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient
from tests.http.v2.helpers import error_codes

from moorage.domain.errors import PaginationInvalidError, SizeInvalidError
from moorage.http.inputs import (
    MAX_INT,
    parse_byte_range,
    parse_content_length,
    parse_content_range,
    parse_count,
    parse_uint,
)

NAME = "acme/app"
HUGE = "9" * 5000  # past Python's 4,300-digit int conversion limit


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("007", 7),
        (str(MAX_INT), MAX_INT),
        ("0" * 100 + "5", 5),
        (str(MAX_INT + 1), None),
        (HUGE, None),
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1 ", None),
        ("1\n", None),
        ("1_000", None),
        ("²", None),
        ("\u0661", None),
        ("\u0663\u0662", None),
        ("0x1f", None),
    ],
)
def test_parse_uint(text: str, value: int | None) -> None:
    assert parse_uint(text) == value


@given(st.text(max_size=30))
def test_parse_uint_never_raises_and_agrees_with_ascii_int(text: str) -> None:
    value = parse_uint(text)
    if value is not None:
        assert text.isascii() and text.isdigit() and int(text) == value <= MAX_INT


def test_parse_count() -> None:
    assert parse_count(None, limit=10) is None and parse_count("", limit=10) is None
    assert parse_count("3", limit=10) == 3 and parse_count(str(MAX_INT), limit=10) == 10
    for bad in ("²", "\u0661", HUGE, str(MAX_INT + 1), "-1"):
        with pytest.raises(PaginationInvalidError) as caught:
            parse_count(bad, limit=10)
        assert len(str(caught.value)) <= 200


def test_parse_content_length() -> None:
    assert parse_content_length(None) is None and parse_content_length(" 12 ") == 12
    for bad in ("²", "1.0", HUGE, "-0", "", "1,2"):
        with pytest.raises(SizeInvalidError) as caught:
            parse_content_length(bad)
        assert len(str(caught.value)) <= 200 and "sys." not in str(caught.value)


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("0-9", (0, 9)),
        ("bytes 0-9/10", (0, 9)),
        ("bytes=5-5/*", (5, 5)),
        (f"0-{MAX_INT}", (0, MAX_INT)),
        (f"0-{MAX_INT + 1}", None),
        (f"0-{HUGE}", None),
        (f"{HUGE}-{HUGE}", None),
        (f"0-9/{HUGE}", (0, 9)),
        ("9-0", None),
        ("\u0660-\u0669", None),
        ("-1-5", None),
    ],
)
def test_parse_content_range(header: str, parsed: tuple[int, int] | None) -> None:
    assert parse_content_range(header) == parsed


@given(st.text(alphabet="bytes=-0123456789,*/ ²\u0661", max_size=40), st.integers(0, 1 << 20))
def test_parse_byte_range_is_total_and_inside_the_blob(header: str, size: int) -> None:
    parsed = parse_byte_range(header, size)
    if isinstance(parsed, tuple):
        start, end = parsed
        assert 0 <= start <= end < size


# -- over HTTP ---------------------------------------------------------------------------


def _session(client: TestClient) -> str:
    response = client.post(f"/v2/{NAME}/blobs/uploads/")
    assert response.status_code == 202
    return str(response.headers["Location"])


@pytest.mark.parametrize("header", [f"0-{HUGE}", f"{HUGE}-{HUGE}", f"0-{2**64}"])
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_huge_content_range_is_416(client: TestClient, method: str, header: str) -> None:
    location = _session(client)
    url = location if method == "PATCH" else f"{location}?digest=sha256:{'0' * 64}"
    response = client.request(method, url, content=b"abc", headers={"Content-Range": header})
    assert response.status_code == 416, response.text
    assert error_codes(response) == ["RANGE_INVALID"]
    assert client.get(location).headers["Range"] == "0-0"  # the session is as it was


@pytest.mark.parametrize("value", ["²", HUGE, str(2**64), "1.5"])
@pytest.mark.parametrize("method", ["PATCH", "PUT", "POST"])
def test_malformed_content_length_is_400(client: TestClient, method: str, value: str) -> None:
    location = _session(client)
    url = {
        "PATCH": location,
        "PUT": f"{location}?digest=sha256:{'0' * 64}",
        "POST": f"/v2/{NAME}/blobs/uploads/?digest=sha256:{'0' * 64}",
    }[method]
    headers = {"Content-Length": value.encode("latin-1")}
    response = client.request(method, url, content=b"abc", headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["SIZE_INVALID"]
    assert len(response.json()["errors"][0]["message"]) <= 200
