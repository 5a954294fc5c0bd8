"""Repositories as the REST API manages them: create, list, describe, visibility, state,
delete. Who may do what is decided before these run (the access seam); listings are
filtered here by what the caller may read."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from moorage.domain.access import Principal
from moorage.domain.errors import ConflictError, InvalidRequestError, RepositoryNotFoundError
from moorage.domain.names import split_full_name
from moorage.domain.records import (
    RepositoryReference,
    RepositoryState,
    RepositorySummary,
    Visibility,
)
from moorage.model.interface import (
    Listings,
    RepositoryAdministration,
    RepositoryLookup,
    RepositoryPermissions,
)
from moorage.services.repositories import RepositoryResolver, Resolution

MAX_PAGE = 100


class RepositoryAdminStore(
    Listings, RepositoryAdministration, RepositoryLookup, RepositoryPermissions, Protocol
):
    """Repository summaries, state, visibility, deletion, and lookups by name."""


class ReadableRepositories(Protocol):
    def readable_repositories(
        self, principal: Principal, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """``namespace/name`` the principal may pull, byte-wise ascending after ``after``."""
        ...


@dataclass(frozen=True, slots=True)
class RepositoryView:
    repository: RepositoryReference
    summary: RepositorySummary


@dataclass(frozen=True, slots=True)
class RepositoryPage:
    repositories: list[RepositoryView]
    next_page: str | None  # opaque: pass it back as ``next_page`` for the next page


def encode_page_token(last_name: str) -> str:
    return base64.urlsafe_b64encode(last_name.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidRequestError("next_page is not a token this API gave", "next_page") from None
    return raw.decode("utf-8", "replace")  # a forged one only moves the start of the page


class RepositoryAdmin:
    def __init__(
        self,
        model: RepositoryAdminStore,
        resolver: RepositoryResolver,
        readable: ReadableRepositories,
    ) -> None:
        self.model = model
        self.resolver = resolver
        self.readable = readable

    def create(
        self,
        full_name: str,
        visibility: Visibility,
        on_created: Callable[[RepositoryReference], None] | None = None,
    ) -> RepositoryView:
        """A new repository (and its user namespace, as a first push would); an existing
        one is refused: the API creates, it does not adopt."""
        namespace, name = split_full_name(full_name, library=self.resolver.library_support)
        if self.model.lookup_repository(namespace, name) is not None:
            raise ConflictError(f"repository {full_name} already exists")
        repository = self.resolver.resolve(full_name, Resolution.CREATE, on_created)
        if visibility is not Visibility.PRIVATE:
            self.model.set_repository_visibility(repository, visibility)
        return self.view(self.resolver.resolve(full_name, Resolution.READ))

    def view(self, repository: RepositoryReference) -> RepositoryView:
        return RepositoryView(repository, self.model.repository_summary(repository))

    def page(
        self,
        principal: Principal,
        *,
        everything: bool = False,
        namespace: str | None = None,
        public_only: bool = False,
        name_filter: str | None = None,
        limit: int = MAX_PAGE,
        next_page: str | None = None,
    ) -> RepositoryPage:
        """Repositories the principal may read, by full name; ``namespace`` keeps one
        namespace's, ``name_filter`` those whose name (after the namespace) contains it;
        ``everything``: every repository (the registry runs open)."""

        def names(after: str | None, count: int) -> list[str]:
            if everything:
                return self.model.list_repository_names(after, count)
            return self.readable.readable_repositories(principal, after, count)

        after = decode_page_token(next_page) if next_page else None
        prefix = f"{namespace}/" if namespace else ""
        if prefix and (after is None or after < prefix):
            after = prefix  # every name in the namespace sorts after it
        found: list[RepositoryView] = []
        last: str | None = None
        while len(found) < limit:
            batch = names(after, MAX_PAGE)
            if not batch:
                return RepositoryPage(found, None)
            after = batch[-1]
            in_namespace = [name for name in batch if name.startswith(prefix)]
            for repository, summary in self.model.describe_repositories(in_namespace):
                if not _matches(repository, public_only, name_filter):
                    continue
                found.append(RepositoryView(repository, summary))
                last = repository.full_name
                if len(found) == limit:
                    break
            if len(in_namespace) < len(batch):  # past the namespace: nothing more to find
                return RepositoryPage(found, None)
        more = bool(names(last, 1))
        return RepositoryPage(found, encode_page_token(last) if more and last else None)

    def set_visibility(self, repository: RepositoryReference, visibility: Visibility) -> None:
        self.model.set_repository_visibility(repository, visibility)

    def set_state(self, repository: RepositoryReference, state: RepositoryState) -> None:
        if state not in (RepositoryState.NORMAL, RepositoryState.READ_ONLY):
            raise InvalidRequestError("state is normal or read_only", "state")
        self.model.set_repository_state(repository, state)

    def delete(self, repository: RepositoryReference) -> None:
        if not self.model.mark_repository_deleted(repository):
            raise RepositoryNotFoundError(f"no repository {repository.full_name}")


def _matches(repository: RepositoryReference, public_only: bool, name_filter: str | None) -> bool:
    if public_only and not repository.is_public:
        return False
    return name_filter is None or name_filter.lower() in repository.name.lower()
