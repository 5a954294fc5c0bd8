"""Label rules: config labels, storable text, the ``quay.expires-after`` duration (issue 11)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.domain.errors import DataModelError, InvalidLabelKeyError, ManifestError
from moorage.domain.labels import (
    EXPIRES_AFTER_MAXIMUM_S,
    LabelSourceType,
    LabelValueError,
    expires_after_seconds,
    labels_from_config,
    parse_expires_after,
    resolve_media_type,
    validate_label,
)
from moorage.domain.media_types import TEXT_PLAIN


def config(labels: Any) -> dict[str, Any]:
    return {"architecture": "amd64", "config": {"Labels": labels}}


def test_string_labels_come_through_and_empty_keys_are_skipped() -> None:
    assert labels_from_config(config({"a": "1", "": "x", "b": ""}), 10) == {"a": "1", "b": ""}


@pytest.mark.parametrize("document", [{}, {"config": None}, config(None), {"config": {}}])
def test_absent_or_null_labels_are_none(document: dict[str, Any]) -> None:
    assert labels_from_config(document, 10) == {}


@pytest.mark.parametrize("value", [1, 1.5, True, None, [], ["x"], {}, {"a": "b"}])
def test_a_label_value_that_is_not_a_string_is_refused(value: object) -> None:
    # The image-spec's Labels map strings to strings; Go clients fail to decode others.
    with pytest.raises(ManifestError, match="must have a string value"):
        labels_from_config(config({"ok": "x", "k": value}), 10)


@pytest.mark.parametrize("document", [config([]), config("x"), {"config": []}, {"config": 3}])
def test_labels_or_config_that_are_not_objects_are_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ManifestError, match="must be an object"):
        labels_from_config(document, 10)


def test_more_labels_than_the_limit_are_refused_naming_it() -> None:
    labels = {f"k{i}": "v" for i in range(11)}
    with pytest.raises(ManifestError, match=r"11 labels, more than manifest_label_limit \(10\)"):
        labels_from_config(config(labels), 10)
    assert len(labels_from_config(config(labels), 11)) == 11


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"k" * 256: "v"}, "longer than 255"),
        ({"k": "a\u0000b"}, "not valid Unicode"),
        ({"k": "\ud800"}, "not valid Unicode"),
        ({"k\u0000": "v"}, "not valid Unicode"),
        ({"quay.expires-after": "99999999999999w"}, "a century"),
    ],
)
def test_labels_the_database_cannot_hold_are_refused(labels: dict[str, str], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        labels_from_config(config(labels), 10)


def test_keys_up_to_the_column_width_pass() -> None:
    assert labels_from_config(config({"k" * 255: "v"}), 10) == {"k" * 255: "v"}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2h", 7200), (" 1d ", 86400), ("0002w", 1209600), (f"{EXPIRES_AFTER_MAXIMUM_S}s", None)],
)
def test_durations(value: str, seconds: int | None) -> None:
    expected = EXPIRES_AFTER_MAXIMUM_S if seconds is None else seconds
    assert expires_after_seconds(value) == expected


@pytest.mark.parametrize(
    "value", ["1g", "soon", "1.5h", "", "-2h", "0s", "\u00b2h", "\u0661h", "1 h"]
)
def test_unusable_durations_are_ignored_as_quay_ignores_them(value: str) -> None:
    assert expires_after_seconds(value) is None


@pytest.mark.parametrize(
    "value", [f"{EXPIRES_AFTER_MAXIMUM_S + 1}s", "99999999999999w", "9" * 5000 + "s", "5300w"]
)
def test_durations_past_a_century_are_refused(value: str) -> None:
    with pytest.raises(LabelValueError, match="a century"):
        expires_after_seconds(value)
    assert parse_expires_after(value) is None  # a stored one never blocks a tag move


def test_an_api_label_gets_the_same_checks() -> None:
    with pytest.raises(InvalidLabelKeyError):
        validate_label("k" * 256, "v", LabelSourceType.API)
    with pytest.raises(LabelValueError):
        validate_label("quay.expires-after", "99999999999999w", LabelSourceType.API)


def test_a_value_too_deep_to_parse_is_text() -> None:
    assert resolve_media_type("[" * 100_000 + "]" * 100_000, None) == TEXT_PLAIN


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=300), json_values, max_size=8) | json_values)
def test_any_labels_give_string_labels_or_a_manifest_error(labels: Any) -> None:
    try:
        found = labels_from_config(json.loads(json.dumps(config(labels))), 5)
    except ManifestError as exc:
        assert len(str(exc)) <= 200
        return
    for key, value in found.items():
        assert isinstance(key, str) and isinstance(value, str)
        assert 0 < len(key) <= 255
        key.encode("utf-8"), value.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A\s*[0-9]{0,30}[smhdwx]?\s*\Z") | st.text(max_size=40))
def test_any_duration_gives_seconds_none_or_a_refusal(value: str) -> None:
    try:
        seconds = expires_after_seconds(value)
    except DataModelError as exc:
        assert isinstance(exc, LabelValueError) and len(str(exc)) <= 200
        return
    assert seconds is None or 0 < seconds <= EXPIRES_AFTER_MAXIMUM_S
