"""What the registry needs around the seed interface: namespaces, repositories, manifest
pushes, mounts, listings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from moorage.domain.access import Principal
from moorage.domain.manifests import ParsedManifest, Schema1Signer, V1Entry
from moorage.domain.records import (
    Blob,
    LegacyImage,
    Manifest,
    Namespace,
    NamespaceKind,
    RepositoryKind,
    RepositoryReference,
    RepositoryState,
    RepositorySummary,
    Visibility,
)


class Namespaces(Protocol):
    """Creating namespaces and switching them on and off."""

    def create_namespace(
        self,
        name: str,
        kind: NamespaceKind = NamespaceKind.USER,
        *,
        email: str | None = None,
        removed_tag_expiration_s: int | None = None,
    ) -> Namespace:
        """A namespace of ``kind`` with its time-machine window (the configured default
        when None). ``DataModelError`` if the name or e-mail address is taken or the
        window is negative; the name must pass the namespace rules."""
        ...

    def get_namespace(self, name: str) -> Namespace | None:
        """The namespace named ``name`` (enabled or not), or None."""
        ...

    def set_namespace_enabled(self, name: str, enabled: bool) -> bool:
        """Enable or disable every pull and push in the namespace; nothing is deleted.
        False if there is no such namespace."""
        ...


class RepositoryAdministration(Protocol):
    """Creating repositories and setting their state."""

    def create_repository(
        self,
        namespace_name: str,
        repo_name: str,
        *,
        visibility: Visibility = Visibility.PRIVATE,
        kind: RepositoryKind = RepositoryKind.IMAGE,
    ) -> RepositoryReference | None:
        """Creates the repository; returns the existing one if it is already there (two
        creators agree on one), None if the namespace does not exist."""
        ...

    def set_repository_state(
        self, repository_ref: RepositoryReference, state: RepositoryState
    ) -> None:
        """Sets the repository's state (normal, read-only, mirror); a missing repository
        is left alone."""
        ...

    def repository_summary(self, repository_ref: RepositoryReference) -> RepositorySummary:
        """Alive tag count, the summed size of the distinct manifests they point at, and
        the start or end of the latest tag change (None for a repository never tagged)."""
        ...

    def describe_repositories(
        self, full_names: Sequence[str]
    ) -> list[tuple[RepositoryReference, RepositorySummary]]:
        """Each of the ``namespace/name`` repositories that exists, in the order given,
        with its summary (as ``repository_summary``): one page of a listing at once."""
        ...

    def mark_repository_deleted(self, repository_ref: RepositoryReference) -> bool:
        """Deletes the repository as users see it, in one transaction: every alive tag
        ends now, its manifests are marked deleted, and the repository is renamed away
        (state MARKED_FOR_DELETION) so that its name is free for a new repository and
        nothing finds it by name; garbage collection removes its rows and bytes later.
        False if it was already gone."""
        ...


class ManifestWrites(Protocol):
    """Storing and deleting manifests (and V1 chains), and the reads a push needs."""

    def create_manifest(
        self,
        repository_ref: RepositoryReference,
        manifest_bytes: bytes,
        media_type: str,
        *,
        legacy_chain: Sequence[V1Entry] | None = None,
        temp_tag_expiration_s: int | None = None,
        digest_algorithm: str = "sha256",
        parsed: ParsedManifest | None = None,
        labels: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> Manifest:
        """One transaction: the manifest, its config ``labels`` and ``tags`` moved onto it."""
        ...

    def create_legacy_images(
        self, repository_ref: RepositoryReference, chain: Sequence[V1Entry]
    ) -> LegacyImage:
        """Stores a V1 image chain (base → leaf), as a V1 push would; returns the leaf
        with its parents."""
        ...

    def delete_manifest(self, repository_ref: RepositoryReference, manifest: Manifest) -> bool:
        """Ends every alive tag on the manifest (hidden ones too) and marks it deleted:
        no longer pullable or listed as a referrer; history keeps the tag versions, GC
        removes the rows later. False if not in the repository or already deleted."""
        ...

    def has_expired_tag(self, repository_ref: RepositoryReference, tag_name: str) -> bool:
        """True when the name has no alive version but a dead one in the time machine
        (a pull answers "expired", not "unknown")."""
        ...

    def lookup_tagged_manifest(
        self, repository_ref: RepositoryReference, tag_name: str
    ) -> Manifest | None:
        """The manifest of the alive tag ``tag_name`` in one query: None when there is no
        such tag or it has no manifest yet (a V1 tag before its backfill)."""
        ...

    def schema1_signer(self) -> Schema1Signer:
        """The registry's schema 1 signing key, kept in the database so that every
        worker signs with the same key; the first worker to need it creates it."""
        ...


class BlobLinks(Protocol):
    """Which repositories may see a blob: mounts and blob deletes."""

    def mount_blob_into_repository(
        self, blob: Blob, target: RepositoryReference, expiration_seconds: int
    ) -> bool:
        """Links a complete blob into ``target`` for ``expiration_seconds`` (a
        cross-repository mount); copies nothing. False if the blob or the repository is
        gone. The caller has checked read access to the source."""
        ...

    def remove_blob_links(self, repository_ref: RepositoryReference, blob: Blob) -> bool:
        """Drops the repository's upload/mount links to the blob (a blob DELETE). False,
        and nothing changed, while a manifest of the repository references the blob."""
        ...

    def find_readable_repository_with_blob(
        self, reader: Principal | None, digest: str
    ) -> RepositoryReference | None:
        """A repository ``reader`` may pull (the rule of ``list_readable_repository_names``;
        any repository for None, when the registry runs open) in which the complete blob
        ``digest`` is linked and stored: the source of a mount without ``from``. None when
        there is none. One query, a pure database read."""
        ...


class Listings(Protocol):
    """Pages of names for the V2 listing endpoints, and referrers."""

    def list_tag_names(
        self,
        repository_ref: RepositoryReference,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Names of alive tags, byte-wise ascending, strictly after ``after``, at most
        ``limit`` (all when None)."""
        ...

    def list_repository_names(
        self, after: str | None = None, limit: int | None = None, *, public_only: bool = False
    ) -> list[str]:
        """``namespace/name`` of image repositories in enabled namespaces, byte-wise
        ascending, strictly after ``after``; only public ones with ``public_only``."""
        ...

    def list_referrers(
        self, repository_ref: RepositoryReference, subject_digest: str
    ) -> list[Manifest]:
        """Manifests of the repository whose ``subject`` is this digest, oldest first,
        tagged or not (a referrer lives as long as its subject)."""
        ...


class UploadCaps(Protocol):
    """Counting open upload sessions, for the caps on them."""

    def open_upload_counts(
        self, repository_ref: RepositoryReference, client: str | None
    ) -> tuple[int, int]:
        """``(open sessions in the repository, open sessions opened by client)``; the
        second is 0 for a None client. The caps on open sessions read it."""
        ...


class SecurityStatusWrites(Protocol):
    """Recording security scan results."""

    def set_security_status(
        self, legacy_image: LegacyImage, indexed: bool, engine_version: int
    ) -> None:
        """Records a scan result on the legacy image; ``engine_version`` -1 resets it to
        unscanned."""
        ...


class RegistryAdministration(
    Namespaces,
    RepositoryAdministration,
    ManifestWrites,
    BlobLinks,
    Listings,
    UploadCaps,
    SecurityStatusWrites,
    Protocol,
):
    """Every administration protocol above."""
