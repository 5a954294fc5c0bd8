"""The registry data model interface (Quay's ``RegistryDataInterface``, typed).

The 36 methods of ``RegistryDataInterface`` keep the seed's names and meanings; the
records they return are frozen values from ``moorage.domain.records``. Methods the
registry needs around the seed (creating namespaces, repositories, manifests; mounts;
placements) live in ``RegistryAdministration``. "Alive" means ``lifetime_end`` is NULL
or later than now, and the tag is not hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from moorage.domain.access import Principal, Role, TeamRole
from moorage.domain.accounts import (
    AccessFacts,
    AppToken,
    RepositoryPermission,
    RobotAccount,
    Subject,
    Team,
    TeamMember,
    UserAccount,
)
from moorage.domain.manifests import ParsedManifest, Schema1Signer, V1Entry
from moorage.domain.records import (
    Blob,
    BlobUpload,
    DerivedImage,
    Label,
    LegacyImage,
    Manifest,
    ManifestLayer,
    Namespace,
    NamespaceKind,
    RepositoryKind,
    RepositoryReference,
    RepositoryState,
    SecurityScanStatus,
    Tag,
    TorrentInfo,
    Visibility,
)


class RegistryDataInterface(Protocol):
    """The seed interface: tags, manifests, labels, legacy images, derived images, blobs."""

    def find_matching_tag(
        self, repository_ref: RepositoryReference, tag_names: Sequence[str]
    ) -> Tag | None:
        """The alive tag among ``tag_names`` that started most recently, or None.

        An empty ``tag_names`` is a programming error (ValueError)."""
        ...

    def get_most_recent_tag(self, repository_ref: RepositoryReference) -> Tag | None:
        """The alive tag with the latest lifetime start, or None for an empty repository."""
        ...

    def lookup_repository(
        self, namespace_name: str, repo_name: str, kind_filter: RepositoryKind | None = None
    ) -> RepositoryReference | None:
        """The repository by namespace and name; another kind than ``kind_filter`` counts
        as absent. Neither the namespace's enabled flag nor permissions are checked."""
        ...

    def get_manifest_for_tag(
        self, tag: Tag, backfill_if_necessary: bool = False
    ) -> Manifest | None:
        """The manifest of this tag version. A V1 tag has none until backfilled; with
        ``backfill_if_necessary`` one is generated (see ``backfill_manifest_for_tag``)."""
        ...

    def lookup_manifest_by_digest(
        self,
        repository_ref: RepositoryReference,
        manifest_digest: str,
        allow_dead: bool = False,
        include_legacy_image: bool = False,
    ) -> Manifest | None:
        """The manifest with this digest in this repository, if an alive tag (hidden temp
        tags included) or an alive tagged list reaches it; any stored one with
        ``allow_dead``. ``include_legacy_image`` attaches the leaf image with parents."""
        ...

    def get_legacy_images(self, repository_ref: RepositoryReference) -> list[LegacyImage] | None:
        """Every legacy image of the repository with parents and alive tags loaded;
        None if the repository is gone."""
        ...

    def get_legacy_image(
        self,
        repository_ref: RepositoryReference,
        docker_image_id: str,
        include_parents: bool = False,
        include_blob: bool = False,
    ) -> LegacyImage | None:
        """The legacy image by V1 id in this repository; parents run direct parent → root,
        the blob comes with its placements."""
        ...

    def create_manifest_label(
        self,
        manifest: Manifest,
        key: str,
        value: str,
        source_type_name: str,
        media_type_name: str | None = None,
    ) -> Label | None:
        """Adds a label (None if the manifest is gone). Raises InvalidLabelKeyError or
        InvalidMediaTypeError. ``quay.expires-after`` sets every alive tag on the
        manifest to expire at its lifetime start plus the duration."""
        ...

    def list_manifest_labels(
        self, manifest: Manifest, key_prefix: str | None = None
    ) -> list[Label]:
        """Labels of the manifest; ``key_prefix`` filters case-insensitively, literally."""
        ...

    def get_manifest_label(self, manifest: Manifest, label_uuid: str) -> Label | None:
        """The label with this uuid if it is attached to this manifest."""
        ...

    def delete_manifest_label(self, manifest: Manifest, label_uuid: str) -> Label | None:
        """Deletes and returns the label, None if not on this manifest. Only mutable
        (``api``) labels may go: others raise ImmutableLabelError."""
        ...

    def list_repository_tags(
        self, repository_ref: RepositoryReference, include_legacy_images: bool = False
    ) -> list[Tag]:
        """Every alive tag of the repository, ordered by id. Heavy: not for paging."""
        ...

    def list_repository_tag_history(
        self,
        repository_ref: RepositoryReference,
        page: int = 1,
        size: int = 100,
        specific_tag_name: str | None = None,
        active_tags_only: bool = False,
    ) -> tuple[list[Tag], bool]:
        """Visible tag versions, alive and dead (within the namespace's time-machine
        window), newest start first then name; returns (page of tags, has_more)."""
        ...

    def get_repo_tag(
        self,
        repository_ref: RepositoryReference,
        tag_name: str,
        include_legacy_image: bool = False,
    ) -> Tag | None:
        """The alive tag with this name, or None."""
        ...

    def retarget_tag(
        self,
        repository_ref: RepositoryReference,
        tag_name: str,
        manifest_or_legacy_image: Manifest | LegacyImage,
        is_reversion: bool = False,
    ) -> Tag | None:
        """Closes the alive version of the tag now and starts a new one on the target.
        None if the target is not in this repository, if a reversion's target was never
        (within the time-machine window) under this name, or if the tag changed
        concurrently (compare-and-set: of two simultaneous movers exactly one wins)."""
        ...

    def delete_tag(self, repository_ref: RepositoryReference, tag_name: str) -> Tag:
        """Ends the alive version now and returns it (history keeps it). Raises
        DataModelError if there is no alive tag of that name or it changed concurrently."""
        ...

    def change_repository_tag_expiration(
        self, tag: Tag, expiration_date: datetime | None
    ) -> tuple[int | None, bool]:
        """Sets when the tag expires (None: never), clamped to [1 h, 104 w] after the
        tag's lifetime start. Returns (previous end in seconds, ok); an unchanged end is
        ``(None, True)``; a concurrent change or a missing tag gives ``ok=False``."""
        ...

    def get_legacy_images_owned_by_tag(self, tag: Tag) -> list[LegacyImage] | None:
        """Legacy images (the tag's image and ancestors) that no other alive tag of the
        repository uses. None if the tag is gone or has no legacy image."""
        ...

    def get_security_status(
        self, manifest_or_legacy_image: Manifest | LegacyImage
    ) -> SecurityScanStatus | None:
        """Scan status of the legacy image (a manifest's leaf image); manifests without
        one (lists, artifacts) are UNSUPPORTED; None if the row is gone."""
        ...

    def backfill_manifest_for_tag(self, tag: Tag) -> Manifest | None:
        """Returns the tag's manifest, generating and storing a signed schema 1 manifest
        from its legacy image chain when it has none. None if impossible."""
        ...

    def is_namespace_enabled(self, namespace_name: str) -> bool:
        """True when the namespace exists and is enabled."""
        ...

    def list_manifest_layers(
        self, manifest: Manifest, include_placements: bool = False
    ) -> list[ManifestLayer] | None:
        """Layers base → leaf with their blobs; None for lists, unparsable manifests or a
        missing blob. Remote (foreign, ``urls``) layers have no blob."""
        ...

    def lookup_derived_image(
        self,
        manifest: Manifest,
        verb: str,
        varying_metadata: dict[str, Any] | None = None,
        include_placements: bool = False,
    ) -> DerivedImage | None:
        """The derived image keyed by (leaf legacy image, verb, varying metadata)."""
        ...

    def lookup_or_create_derived_image(
        self,
        manifest: Manifest,
        verb: str,
        storage_location: str,
        varying_metadata: dict[str, Any] | None = None,
        include_placements: bool = False,
    ) -> DerivedImage | None:
        """As ``lookup_derived_image``, creating an uploading, unsized one if absent."""
        ...

    def get_derived_image_signature(
        self, derived_image: DerivedImage, signer_name: str
    ) -> str | None:
        """The signature stored for this signer, or None."""
        ...

    def set_derived_image_signature(
        self, derived_image: DerivedImage, signer_name: str, signature: str
    ) -> None:
        """Stores (or replaces) the signature of a known signer kind."""
        ...

    def delete_derived_image(self, derived_image: DerivedImage) -> None:
        """Deletes the derived image's storage row and all hanging off it."""
        ...

    def set_derived_image_size(
        self, derived_image: DerivedImage, compressed_size: int
    ) -> DerivedImage | None:
        """Records the size and marks the derived image complete (not uploading)."""
        ...

    def get_torrent_info(self, blob: Blob) -> TorrentInfo | None:
        """The first torrent info recorded for the blob, or None."""
        ...

    def set_torrent_info(self, blob: Blob, piece_length: int, pieces: bytes) -> TorrentInfo:
        """Records torrent info; the first write per (blob, piece length) wins."""
        ...

    def get_repo_blob_by_digest(
        self,
        repository_ref: RepositoryReference,
        blob_digest: str,
        include_placements: bool = False,
    ) -> Blob | None:
        """A complete blob with this digest that the repository can see (through a
        manifest, a legacy image or an unexpired upload/mount link)."""
        ...

    def create_blob_upload(
        self,
        repository_ref: RepositoryReference,
        upload_id: str,
        location_name: str,
        storage_metadata: dict[str, Any],
        *,
        client: str | None = None,
    ) -> BlobUpload | None:
        """Starts an upload session; None if the repository is gone. ``client`` (our
        addition) records who opened it, for :meth:`open_upload_counts`."""
        ...

    def lookup_blob_upload(
        self, repository_ref: RepositoryReference, blob_upload_id: str
    ) -> BlobUpload | None:
        """The upload session by id within this repository (Quay ignored the repository;
        we do not: an id from another repository is not found)."""
        ...

    def update_blob_upload(
        self,
        blob_upload: BlobUpload,
        uncompressed_byte_count: int | None,
        piece_hashes: bytes | None,
        piece_sha_state: bytes | None,
        storage_metadata: dict[str, Any],
        byte_count: int,
        chunk_count: int,
        sha_state: bytes | None,
    ) -> BlobUpload | None:
        """Overwrites the session's progress if it is still the one ``blob_upload`` holds
        (same byte and chunk counts: a compare-and-set, our addition); returns the fresh
        record, None if the session is gone or another request changed it meanwhile."""
        ...

    def delete_blob_upload(self, blob_upload: BlobUpload) -> None:
        """Deletes the session record if present."""
        ...

    def commit_blob_upload(
        self,
        blob_upload: BlobUpload,
        blob_digest_str: str,
        blob_expiration_seconds: int,
        *,
        torrent_info: TorrentInfo | None = None,
    ) -> Blob | None:
        """Turns the session into a blob (deduplicated by digest, placed at the upload's
        location) linked to the repository for ``blob_expiration_seconds``; deletes the
        session. None if the session is gone. ``torrent_info`` (our addition) is recorded
        in the same transaction, as ``set_torrent_info`` would (first write wins)."""
        ...


class RegistryAdministration(Protocol):
    """What the registry needs around the seed interface."""

    def open_upload_counts(
        self, repository_ref: RepositoryReference, client: str | None
    ) -> tuple[int, int]:
        """``(open sessions in the repository, open sessions opened by client)``; the
        second is 0 for a None client. The caps on open sessions read it."""
        ...

    def create_namespace(
        self,
        name: str,
        kind: NamespaceKind = NamespaceKind.USER,
        *,
        email: str | None = None,
        removed_tag_expiration_s: int | None = None,
    ) -> Namespace: ...

    def get_namespace(self, name: str) -> Namespace | None: ...

    def set_namespace_enabled(self, name: str, enabled: bool) -> bool: ...

    def create_repository(
        self,
        namespace_name: str,
        repo_name: str,
        *,
        visibility: Visibility = Visibility.PRIVATE,
        kind: RepositoryKind = RepositoryKind.IMAGE,
    ) -> RepositoryReference | None: ...

    def set_repository_state(
        self, repository_ref: RepositoryReference, state: RepositoryState
    ) -> None: ...

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
    ) -> LegacyImage: ...

    def has_expired_tag(self, repository_ref: RepositoryReference, tag_name: str) -> bool: ...

    def mount_blob_into_repository(
        self, blob: Blob, target: RepositoryReference, expiration_seconds: int
    ) -> bool: ...

    def add_blob_placement(self, blob: Blob, location_name: str) -> None: ...

    def set_security_status(
        self, legacy_image: LegacyImage, indexed: bool, engine_version: int
    ) -> None: ...

    def delete_manifest(self, repository_ref: RepositoryReference, manifest: Manifest) -> bool: ...

    def list_referrers(
        self, repository_ref: RepositoryReference, subject_digest: str
    ) -> list[Manifest]: ...

    def list_tag_names(
        self,
        repository_ref: RepositoryReference,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[str]: ...

    def list_repository_names(
        self, after: str | None = None, limit: int | None = None, *, public_only: bool = False
    ) -> list[str]: ...

    def remove_blob_links(self, repository_ref: RepositoryReference, blob: Blob) -> bool: ...

    def schema1_signer(self) -> Schema1Signer: ...

    def lookup_tagged_manifest(
        self, repository_ref: RepositoryReference, tag_name: str
    ) -> Manifest | None: ...

    def list_blobs_missing_placement(
        self, location_name: str, *, after_id: int = 0, limit: int = 100
    ) -> list[Blob]: ...

    def list_stale_blob_uploads(
        self, created_before: datetime, limit: int = 100
    ) -> list[BlobUpload]: ...

    def known_blob_upload_ids(self, upload_ids: Iterable[str]) -> set[str]: ...

    def lookup_blob(self, digest: str) -> Blob | None:
        """The global blob recorded under ``digest`` (in any repository), placements loaded."""
        ...

    def remove_blob_placement(self, blob: Blob, location_name: str) -> bool:
        """Forget that ``location_name`` holds the blob's bytes (they were found corrupt);
        True if a placement was removed. Reads then use another location or answer 404."""
        ...

    def placed_blob_totals(
        self, location_name: str, *, after_digest: str | None = None
    ) -> tuple[int, int]:
        """``(count, bytes)`` of the blobs placed at ``location_name`` whose digest sorts
        after ``after_digest`` (every one when None)."""
        ...


class AccountsAndPermissions(Protocol):
    """Users, organizations' teams, robots, application tokens and repository permissions
    (issue 12). Secrets come in already hashed: the model never sees one in clear. Names
    are namespace names (a user is a namespace of kind user); a missing name makes
    lookups return None and changes return False, never raise."""

    def accounts_key(self) -> bytes:
        """The registry's key for HMAC-SHA256 of robot secrets and application tokens,
        kept in the database so every worker agrees; the first caller creates it."""
        ...

    def create_user(
        self,
        name: str,
        password_hash: str | None,
        *,
        email: str | None = None,
        superuser: bool = False,
    ) -> UserAccount:
        """The user's namespace and credentials in one transaction; ``DataModelError``
        if the name (or e-mail address) is taken."""
        ...

    def lookup_user(self, name: str) -> UserAccount | None:
        """The user named ``name``, its password hash loaded; None for organizations."""
        ...

    def list_users(self) -> list[UserAccount]:
        """Every user, by name."""
        ...

    def set_user_password_hash(self, name: str, password_hash: str | None) -> bool:
        """Replace the user's password hash (None: no password login)."""
        ...

    def set_user_enabled(self, name: str, enabled: bool) -> bool:
        """A disabled user cannot log in and its credentials grant nothing."""
        ...

    def set_user_superuser(self, name: str, superuser: bool) -> bool:
        """Make or unmake a superuser."""
        ...

    def list_namespaces(self, kind: NamespaceKind) -> list[Namespace]:
        """Every namespace of ``kind``, by name."""
        ...

    def create_team(
        self, organization: str, name: str, role: TeamRole, description: str = ""
    ) -> Team:
        """A team of an organization; ``DataModelError`` if the organization does not
        exist (or is a user) or the team exists."""
        ...

    def lookup_team(self, organization: str, name: str) -> Team | None:
        """The team ``name`` of ``organization``."""
        ...

    def list_teams(self, organization: str) -> list[Team]:
        """The organization's teams, by name."""
        ...

    def set_team_role(self, team: Team, role: TeamRole) -> bool:
        """Change what the team's membership gives in its organization."""
        ...

    def add_team_member(self, team: Team, member: Subject) -> bool:
        """Add a user or robot; False if it was a member already."""
        ...

    def remove_team_member(self, team: Team, member: Subject) -> bool:
        """Remove a user or robot; False if it was not a member."""
        ...

    def list_team_members(self, team: Team) -> list[TeamMember]:
        """Users then robots of the team, by name."""
        ...

    def create_robot(
        self, namespace: str, short_name: str, secret_hash: bytes, description: str = ""
    ) -> RobotAccount:
        """A robot of an organization or user; ``DataModelError`` if the namespace does
        not exist or the robot does."""
        ...

    def lookup_robot(self, namespace: str, short_name: str) -> RobotAccount | None:
        """The robot, its secret hash loaded."""
        ...

    def list_robots(self, namespace: str) -> list[RobotAccount]:
        """The namespace's robots, by name (no hashes)."""
        ...

    def set_robot_secret_hash(self, namespace: str, short_name: str, secret_hash: bytes) -> bool:
        """Replace the robot's secret (the old one stops working at once)."""
        ...

    def delete_robot(self, namespace: str, short_name: str) -> bool:
        """Delete the robot with its team memberships and permissions."""
        ...

    def create_app_token(
        self, username: str, title: str, token_hash: bytes, expires: datetime | None = None
    ) -> AppToken:
        """An application token of the user; ``DataModelError`` for an unknown user."""
        ...

    def lookup_app_token(self, token_hash: bytes) -> AppToken | None:
        """The token with this HMAC, whoever owns it (expired ones included)."""
        ...

    def list_app_tokens(self, username: str) -> list[AppToken]:
        """The user's tokens, oldest first (no hashes)."""
        ...

    def delete_app_token(self, username: str, token_uuid: str) -> bool:
        """Revoke one of the user's tokens."""
        ...

    def set_repository_permission(
        self, repository: RepositoryReference, subject: Subject | Team, role: Role
    ) -> None:
        """Grant ``role`` on the repository to a user, robot or team (replacing its role)."""
        ...

    def delete_repository_permission(
        self, repository: RepositoryReference, subject: Subject | Team
    ) -> bool:
        """Revoke what was granted to the subject directly; False if there was nothing."""
        ...

    def list_repository_permissions(
        self, repository: RepositoryReference
    ) -> list[RepositoryPermission]:
        """Every grant on the repository: users, teams (``team`` by name), robots."""
        ...

    def set_repository_visibility(
        self, repository: RepositoryReference, visibility: Visibility
    ) -> None:
        """Public repositories can be pulled by anyone, anonymous callers included."""
        ...

    def access_facts(self, principal: Principal, namespace: str, repository: str) -> AccessFacts:
        """Everything one decision on ``namespace/repository`` needs, read together: see
        ``AccessFacts``. A pure database read (safe on the event loop with SQLite)."""
        ...

    def list_readable_repository_names(
        self, principal: Principal, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """``namespace/name`` of the repositories ``principal`` may pull, sorted, after
        ``after``: public ones, its namespace's, its organizations' (team admin) and those
        granted to it or its teams; all of them for a superuser; none in a disabled
        namespace."""
        ...


class RegistryModel(RegistryDataInterface, RegistryAdministration, Protocol):
    """The whole model as services see it."""
