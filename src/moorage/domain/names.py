"""Grammar of namespace, repository and tag names (OCI distribution-spec + Quay)."""

from __future__ import annotations

import re

from moorage.domain.errors import InvalidNameError

NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
# One path component of a repository name below the namespace (distribution-spec grammar).
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_PATTERN = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_FULL_NAME_LENGTH = 255


def validate_namespace_name(name: str) -> str:
    if not 2 <= len(name) <= 255 or not NAMESPACE_PATTERN.match(name):
        raise InvalidNameError(f"invalid namespace name: {name!r}")
    return name


def validate_repository_name(name: str) -> str:
    """The part after the namespace; nested components (``a/b``) are allowed."""
    if not 1 <= len(name) <= 255 or not REPOSITORY_PATTERN.match(name):
        raise InvalidNameError(f"invalid repository name: {name!r}")
    return name


def validate_tag_name(name: str) -> str:
    if not TAG_PATTERN.match(name):
        raise InvalidNameError(f"invalid tag name: {name!r}")
    return name


def split_full_name(full_name: str) -> tuple[str, str]:
    """Split ``namespace/repo[/more]`` into namespace and repository, validating both."""
    if len(full_name) > MAX_FULL_NAME_LENGTH or "/" not in full_name:
        raise InvalidNameError(f"invalid repository name: {full_name!r}")
    namespace, repository = full_name.split("/", 1)
    return validate_namespace_name(namespace), validate_repository_name(repository)
