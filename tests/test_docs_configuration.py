"""docs/configuration.md documents every setting: one table row per key of the Settings model,
nested sections included (``storage.locations.<name>.bucket``), and no row for a key that
does not exist. Adding a setting without its row fails here."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from moorage.config import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|", re.MULTILINE)


def _nested_model(annotation: object) -> tuple[str, type[BaseModel]] | None:
    """("", Model) for a section, ("<name>.", Model) for a mapping of named sections."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "", annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        inner = _nested_model(args[1])
        return None if inner is None else ("<name>." + inner[0], inner[1])
    if origin in (typing.Union, types.UnionType):
        found = [model for arg in args if (model := _nested_model(arg)) is not None]
        return found[0] if found else None
    return None


def setting_keys(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is None:
            yield f"{prefix}{name}"
        else:
            inner_prefix, inner = nested
            yield from setting_keys(inner, f"{prefix}{name}.{inner_prefix}")


def documented_keys() -> set[str]:
    keys_section = DOC.read_text().split("\n## Keys", 1)[1].split("\n## ", 1)[0]
    return set(ROW.findall(keys_section))


def test_the_walk_sees_nested_sections() -> None:
    keys = set(setting_keys())
    assert {"port", "storage.root", "storage.locations.<name>.secret_key"} <= keys
    assert "storage" not in keys and "storage.locations" not in keys


def test_every_setting_has_a_row() -> None:
    missing = sorted(set(setting_keys()) - documented_keys())
    assert not missing, f"settings without a row in docs/configuration.md: {missing}"


def test_every_row_is_a_setting() -> None:
    keys = set(setting_keys())
    sections = {key.rsplit(".", n)[0] for key in keys for n in range(1, key.count(".") + 1)}
    stale = sorted(documented_keys() - keys - sections)  # a row may present a section
    assert not stale, f"rows in docs/configuration.md for no setting: {stale}"
