"""Listings: tags of a repository, the catalog, and referrers of a manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moorage.domain.digest import Digest
from moorage.domain.records import Manifest, RepositoryReference
from moorage.model.interface import Listings
from moorage.services.reads import pure_read


@dataclass(frozen=True, slots=True)
class Page:
    """One page of names; ``next_last`` is the ``last`` of the next page when more remain."""

    items: list[str]
    next_last: str | None


class ListingService:
    def __init__(self, model: Listings, *, page_cap: int = 1000) -> None:
        self.model, self.page_cap = model, page_cap

    def _page(self, names: list[str], n: int | None, limit: int) -> Page:
        if n is None and len(names) <= limit - 1:
            return Page(names, None)
        size = limit - 1 if n is None else n
        more = len(names) > size
        items = names[:size]
        return Page(items, items[-1] if more and items else None)

    @pure_read
    def tags(self, repository: RepositoryReference, n: int | None, last: str | None) -> Page:
        """Byte-wise ordered; without ``n`` the first ``page_cap`` names and a ``Link``."""
        if n == 0:
            return Page([], None)
        limit = (self.page_cap if n is None else n) + 1
        names = self.model.list_tag_names(repository, after=last or None, limit=limit)
        return self._page(names, n, limit)

    @pure_read
    def catalog(
        self,
        n: int | None,
        last: str | None,
        readable: Callable[[str | None, int], list[str]] | None = None,
    ) -> Page:
        """Every repository, or with ``readable(after, limit)`` only those it lists (the
        ones the caller may pull), in the same order and paging."""
        if n == 0:
            return Page([], None)
        limit = (self.page_cap if n is None else n) + 1
        if readable is not None:
            names = readable(last or None, limit)
        else:
            names = self.model.list_repository_names(after=last or None, limit=limit)
        return self._page(names, n, limit)

    def referrers(
        self, repository: RepositoryReference, digest: str, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose ``subject`` is ``digest`` (protocol.md §1.12)."""
        Digest.parse(digest)
        found = []
        for manifest in self.model.list_referrers(repository, digest):
            descriptor = _descriptor(manifest)
            if artifact_type is not None and descriptor.get("artifactType") != artifact_type:
                continue
            found.append(descriptor)
        return found


def _descriptor(manifest: Manifest) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": len(manifest.internal_manifest_bytes),
    }
    if manifest.artifact_type:
        descriptor["artifactType"] = manifest.artifact_type
    body = json.loads(manifest.internal_manifest_bytes)
    annotations = body.get("annotations") if isinstance(body, dict) else None
    if isinstance(annotations, dict) and annotations:
        descriptor["annotations"] = annotations
    return descriptor
