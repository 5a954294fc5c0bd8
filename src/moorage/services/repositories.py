"""Resolving ``namespace/name`` from a URL to a repository the operation may use."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from enum import Enum
from typing import Protocol

from moorage.domain.errors import (
    AccessDeniedError,
    DataModelError,
    InvalidNameError,
    OperationUnsupportedError,
    RepositoryNotFoundError,
)
from moorage.domain.names import split_full_name
from moorage.domain.records import RepositoryKind, RepositoryReference, RepositoryState
from moorage.model.interface import Namespaces, RepositoryAdministration, RepositoryLookup
from moorage.services.reads import pure_read


class RepositoryStore(Namespaces, RepositoryAdministration, RepositoryLookup, Protocol):
    """Finding repositories, and creating them (and their namespaces) on push."""


class Resolution(Enum):
    """How a request finds its repository: the one thing its declared access decides."""

    READ = "read"  # an existing repository, to read
    WRITE = "write"  # an existing repository, to write (never created)
    CREATE = "create"  # to push into, created with its namespace on first push


class RepositoryResolver:
    """Name → repository, with the checks every container endpoint shares: the name's
    grammar, the namespace enabled, image kind, and for writes the repository state."""

    def __init__(
        self, model: RepositoryStore, *, create_on_push: bool = True, library_support: bool = True
    ) -> None:
        self.model = model
        self.create_on_push = create_on_push
        self.library_support = library_support  # ``alpine`` means ``library/alpine``

    def _checked(self, repository: RepositoryReference) -> RepositoryReference:
        if repository.state is RepositoryState.MARKED_FOR_DELETION:
            raise RepositoryNotFoundError(f"repository {repository.full_name} is deleted")
        if not repository.namespace_enabled:
            raise AccessDeniedError(f"namespace {repository.namespace_name} is disabled")
        if repository.kind is not RepositoryKind.IMAGE:
            raise OperationUnsupportedError(
                f"{repository.full_name} is an application repository, not a container image one"
            )
        return repository

    def resolve(
        self,
        full_name: str,
        resolution: Resolution,
        on_created: Callable[[RepositoryReference], None] | None = None,
    ) -> RepositoryReference:
        if resolution is Resolution.READ:
            return self.for_read(full_name)
        if resolution is Resolution.WRITE:
            return self.for_existing_write(full_name)
        return self.for_write(full_name, on_created)

    @pure_read
    def namespace_disabled(self, full_name: str) -> bool:
        """Whether the name's namespace exists and is disabled (a malformed name: False)."""
        try:
            namespace, _name = split_full_name(full_name, library=self.library_support)
        except InvalidNameError:
            return False
        found = self.model.get_namespace(namespace)
        return found is not None and not found.enabled

    @pure_read
    def for_read(self, full_name: str) -> RepositoryReference:
        namespace, name = split_full_name(full_name, library=self.library_support)
        repository = self.model.lookup_repository(namespace, name)
        if repository is None:
            found = self.model.get_namespace(namespace)
            if found is not None and not found.enabled:
                raise AccessDeniedError(f"namespace {namespace} is disabled")
            raise RepositoryNotFoundError(f"repository name not known to registry: {full_name}")
        return self._checked(repository)

    def for_existing_write(self, full_name: str) -> RepositoryReference:
        """An existing repository to write into (upload sessions, deletes): a missing one
        is NAME_UNKNOWN and is not created."""
        return self._writable(self.for_read(full_name))

    def for_write(
        self, full_name: str, on_created: Callable[[RepositoryReference], None] | None = None
    ) -> RepositoryReference:
        """The repository to push into, created (with its namespace) on first push;
        ``on_created`` is told when this call created it."""
        namespace, name = split_full_name(full_name, library=self.library_support)
        repository = self.model.lookup_repository(namespace, name)
        if repository is None:
            if not self.create_on_push:
                raise RepositoryNotFoundError(f"repository name not known to registry: {full_name}")
            repository = self._create(namespace, name)
            if on_created is not None:
                on_created(repository)
        return self._writable(self._checked(repository))

    def _writable(self, repository: RepositoryReference) -> RepositoryReference:
        if repository.state is not RepositoryState.NORMAL:
            raise AccessDeniedError(
                f"{repository.full_name} is {repository.state.name.lower()}: no pushes"
            )
        return repository

    def _create(self, namespace: str, name: str) -> RepositoryReference:
        if self.model.get_namespace(namespace) is None:
            with suppress(DataModelError):  # created concurrently by another push
                self.model.create_namespace(namespace)
        repository = self.model.create_repository(namespace, name)
        if repository is None:
            raise RepositoryNotFoundError(f"namespace {namespace} does not exist")
        return repository
