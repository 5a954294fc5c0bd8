"""Grammar of namespace, repository and tag names (OCI distribution-spec + Quay)."""

from __future__ import annotations

import re

from moorage.domain.echo import echo
from moorage.domain.errors import InvalidNameError

NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
# One path component of a repository name below the namespace (distribution-spec grammar).
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_PATTERN = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_FULL_NAME_LENGTH = 255
# Where a name without a namespace (``alpine``) lives when library support is on: Docker Hub's
# convention, and Quay's LIBRARY_NAMESPACE.
LIBRARY_NAMESPACE = "library"


def validate_namespace_name(name: str) -> str:
    if not 2 <= len(name) <= 255 or not NAMESPACE_PATTERN.match(name):
        raise InvalidNameError(f"invalid namespace name: {echo(name)}")
    return name


def validate_repository_name(name: str) -> str:
    """The part after the namespace; nested components (``a/b``) are allowed."""
    if not 1 <= len(name) <= 255 or not REPOSITORY_PATTERN.match(name):
        raise InvalidNameError(f"invalid repository name: {echo(name)}")
    return name


def validate_tag_name(name: str) -> str:
    if not TAG_PATTERN.match(name):
        raise InvalidNameError(f"invalid tag name: {echo(name)}")
    return name


def split_full_name(full_name: str, *, library: bool = False) -> tuple[str, str]:
    """Split ``namespace/repo[/more]`` into namespace and repository, validating both. With
    ``library``, a one-component name (``alpine``) is that repository in ``LIBRARY_NAMESPACE``
    (so ``alpine`` and ``library/alpine`` name the same repository); without, it is invalid."""
    if len(full_name) > MAX_FULL_NAME_LENGTH:
        raise InvalidNameError(f"invalid repository name: {echo(full_name)}")
    if "/" not in full_name:
        if not library:
            raise InvalidNameError(f"invalid repository name: {echo(full_name)}")
        return LIBRARY_NAMESPACE, validate_repository_name(full_name)
    namespace, repository = full_name.split("/", 1)
    return validate_namespace_name(namespace), validate_repository_name(repository)
