"""The registry schema (SQLAlchemy Core). Shaped after Quay's OCI-era tables.

tag -> manifest -> manifest_blob -> blob (global, deduplicated by digest) -> blob_placement.
Legacy V1 images are derived from manifests and stored where lookups need them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite rowid aliasing needs INTEGER


def _fk(
    target: str, *, cascade: bool = True, nullable: bool = False, index: bool = True
) -> Column[int]:
    """``index=False`` where a composite index or unique key already leads with the column."""
    table = target.split(".")[0]
    return Column(
        f"{table}_id" if target.endswith(".id") else target,
        BigId,
        ForeignKey(target, ondelete="CASCADE" if cascade else "SET NULL"),
        nullable=nullable,
        index=index,
    )


namespace = Table(
    "namespace",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("email", String(255), nullable=True, unique=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("removed_tag_expiration_s", BigInteger, nullable=False),
    Column("billing_id", String(255), nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
)

repository = Table(
    "repository",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("namespace.id"),
    Column("name", String(255), nullable=False),
    Column("visibility", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state", Integer, nullable=False, server_default=text("0")),
    Column("trust_enabled", Boolean, nullable=False, server_default=text("false")),
    Column("description", Text, nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
    UniqueConstraint("namespace_id", "name"),
)

storage_location = Table(
    "storage_location",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
)

blob = Table(
    "blob",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    # NULL for derived (non content-addressed) storage until it is complete.
    Column("digest", String(200), nullable=True, unique=True),
    Column("compressed_size", BigInteger, nullable=True),
    Column("uncompressed_size", BigInteger, nullable=True),
    Column("uploading", Boolean, nullable=False),
    Column("content_addressed", Boolean, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

blob_placement = Table(
    "blob_placement",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("blob.id", index=False),
    _fk("storage_location.id"),
    UniqueConstraint("blob_id", "storage_location_id"),
)

manifest = Table(
    "manifest",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("repository.id"),
    Column("digest", String(200), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("manifest_bytes", LargeBinary, nullable=False),
    Column("config_media_type", String(255), nullable=True),
    Column("artifact_type", String(255), nullable=True),
    Column("subject_digest", String(200), nullable=True),
    Column("layers_compressed_size", BigInteger, nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
    # Set by a DELETE of the manifest: no longer served or listed; GC removes it later.
    Column("deleted_at_ms", BigInteger, nullable=True),
    UniqueConstraint("repository_id", "digest"),
    Index("ix_manifest_repository_subject", "repository_id", "subject_digest"),
)

manifest_blob = Table(
    "manifest_blob",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("repository.id"),
    _fk("manifest.id"),
    Column("blob_id", BigId, ForeignKey("blob.id"), nullable=False),
    UniqueConstraint("manifest_id", "blob_id"),
    # "Does this repository reference the blob?" (every blob HEAD and GET) is answered by
    # one index entry; with blob_id alone, SQLite probed the repository's every row.
    Index("ix_manifest_blob_blob_repository", "blob_id", "repository_id"),
)

manifest_child = Table(
    "manifest_child",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("repository.id"),
    _fk("manifest.id"),
    Column("child_manifest_id", BigId, ForeignKey("manifest.id"), nullable=False, index=True),
    UniqueConstraint("manifest_id", "child_manifest_id"),
)

legacy_image = Table(
    "legacy_image",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("repository.id", index=False),
    Column("docker_image_id", String(128), nullable=False),
    Column("blob_id", BigId, ForeignKey("blob.id"), nullable=False),
    Column("parent_id", BigId, ForeignKey("legacy_image.id"), nullable=True, index=True),
    Column("ancestors", Text, nullable=False),  # "/1/5/9/": db ids root -> direct parent
    Column("created", DateTime(timezone=True), nullable=True),
    Column("comment", Text, nullable=True),
    Column("command", Text, nullable=True),
    Column("author", Text, nullable=True),
    Column("v1_json_metadata", Text, nullable=True),
    Column("v1_checksum", String(255), nullable=True),
    Column("aggregate_size", BigInteger, nullable=True),
    Column("security_indexed", Boolean, nullable=False, server_default=text("false")),
    Column("security_indexed_engine", Integer, nullable=False, server_default=text("-1")),
    # Pushed through the V1 protocol: its blob is linked to the repository by the image itself.
    # Images derived from a manifest link nothing; the manifest's own blob links do.
    Column("v1_pushed", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("repository_id", "docker_image_id"),
    Index("ix_legacy_image_blob_repository", "blob_id", "repository_id"),
)

manifest_legacy_image = Table(
    "manifest_legacy_image",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("repository.id"),
    Column(
        "manifest_id",
        BigId,
        ForeignKey("manifest.id", ondelete="CASCADE"),
        unique=True,
        nullable=False,
    ),
    Column("legacy_image_id", BigId, ForeignKey("legacy_image.id"), nullable=False, index=True),
)

tag = Table(
    "tag",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("repository.id"),
    Column("name", String(255), nullable=False),
    # A tag version points at a manifest; a V1-pushed tag may point only at a legacy image
    # until its manifest is backfilled.
    Column("manifest_id", BigId, ForeignKey("manifest.id"), nullable=True, index=True),
    Column("legacy_image_id", BigId, ForeignKey("legacy_image.id"), nullable=True, index=True),
    Column("lifetime_start_ms", BigInteger, nullable=False),
    Column("lifetime_end_ms", BigInteger, nullable=True),
    Column("hidden", Boolean, nullable=False, server_default=text("false")),
    Column("reversion", Boolean, nullable=False, server_default=text("false")),
    Index("ix_tag_repository_name", "repository_id", "name"),
    Index("ix_tag_repository_start", "repository_id", "lifetime_start_ms"),
    Index("ix_tag_repository_end", "repository_id", "lifetime_end_ms"),
    # At most one open-ended version per name: two concurrent creators cannot both win.
    # (Quay's unique (repository, name, end) is not used: it forbids two versions of a name
    # ending in the same millisecond, which a create-then-delete legitimately produces;
    # compare-and-set under a repository lock serializes movers instead.)
    Index(
        "uq_tag_open_name",
        "repository_id",
        "name",
        unique=True,
        postgresql_where=text("lifetime_end_ms IS NULL"),
        sqlite_where=text("lifetime_end_ms IS NULL"),
    ),
)

label = Table(
    "label",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("key", String(255), nullable=False, index=True),
    Column("value", Text, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("source_type", String(16), nullable=False),
)

manifest_label = Table(
    "manifest_label",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("repository.id"),
    _fk("manifest.id"),
    Column(
        "label_id", BigId, ForeignKey("label.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    UniqueConstraint("manifest_id", "label_id"),
)

uploaded_blob = Table(
    "uploaded_blob",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("repository.id"),
    Column("blob_id", BigId, ForeignKey("blob.id"), nullable=False),
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False, index=True),
    Index("ix_uploaded_blob_blob_repository", "blob_id", "repository_id"),
)

blob_upload = Table(
    "blob_upload",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("uuid", String(64), nullable=False, unique=True),
    _fk("repository.id", index=False),
    Column("storage_location_id", BigId, ForeignKey("storage_location.id"), nullable=False),
    Column("storage_metadata", JSON, nullable=False),
    Column("byte_count", BigInteger, nullable=False, server_default=text("0")),
    Column("chunk_count", Integer, nullable=False, server_default=text("0")),
    Column("uncompressed_byte_count", BigInteger, nullable=True),
    Column("sha_state", LargeBinary, nullable=True),
    Column("piece_sha_state", LargeBinary, nullable=True),
    Column("piece_hashes", LargeBinary, nullable=True),
    Column("created", DateTime(timezone=True), nullable=False, index=True),
    # Who opened it (an address, later an account): the per-client cap counts by it.
    Column("client", String(255), nullable=True, index=True),
    UniqueConstraint("repository_id", "uuid"),
)

derived_image = Table(
    "derived_image",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "source_legacy_image_id",
        BigId,
        ForeignKey("legacy_image.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("blob_id", BigId, ForeignKey("blob.id"), nullable=False, unique=True),
    Column("verb", String(64), nullable=False),
    # sha256 of the canonical JSON of the varying metadata; "" when there is none, so that
    # the unique key also holds for the metadata-free case (NULLs never collide).
    Column("uniqueness_hash", String(64), nullable=False),
    Column("varying_metadata", JSON, nullable=True),
    UniqueConstraint("source_legacy_image_id", "verb", "uniqueness_hash"),
)

blob_signature = Table(
    "blob_signature",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("blob.id"),
    Column("signer_name", String(64), nullable=False),
    Column("signature", Text, nullable=True),
    Column("uploading", Boolean, nullable=False),
    UniqueConstraint("blob_id", "signer_name"),
)

torrent_info = Table(
    "torrent_info",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("blob.id", index=False),
    Column("piece_length", Integer, nullable=False),
    Column("pieces", LargeBinary, nullable=False),
    UniqueConstraint("blob_id", "piece_length"),
)

registry_secret = Table(
    "registry_secret",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

# -- accounts (issue 12): a user IS a namespace (kind "user"), as in Quay ------------------

user_account = Table(
    "user_account",
    metadata,
    Column(
        "namespace_id",
        BigId,
        ForeignKey("namespace.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    # argon2id (PHC string); NULL: no password login (application tokens only).
    Column("password_hash", String(255), nullable=True),
    Column("superuser", Boolean, nullable=False, server_default=text("false")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
)

team = Table(
    "team",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("namespace.id", index=False),  # the organization
    Column("name", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("created", DateTime(timezone=True), nullable=False),
    UniqueConstraint("namespace_id", "name"),
)

robot = Table(
    "robot",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("namespace.id", index=False),  # the owner: an organization or a user
    Column("name", String(255), nullable=False),
    # HMAC-SHA256 of the secret under the registry's accounts key (high entropy: no argon2).
    Column("secret_hash", LargeBinary, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("created", DateTime(timezone=True), nullable=False),
    UniqueConstraint("namespace_id", "name"),
)

team_member = Table(
    "team_member",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("team.id", index=False),
    # Exactly one of the two: a user (its namespace) or a robot.
    Column(
        "user_id", BigId, ForeignKey("namespace.id", ondelete="CASCADE"), nullable=True, index=True
    ),
    Column(
        "robot_id", BigId, ForeignKey("robot.id", ondelete="CASCADE"), nullable=True, index=True
    ),
    UniqueConstraint("team_id", "user_id"),
    UniqueConstraint("team_id", "robot_id"),
)

app_token = Table(
    "app_token",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column(
        "user_id", BigId, ForeignKey("namespace.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("title", String(255), nullable=False),
    Column("token_hash", LargeBinary, nullable=False, unique=True),  # HMAC-SHA256, as robots
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=True),
)

repository_permission = Table(
    "repository_permission",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _fk("repository.id", index=False),
    # Exactly one of the three is set.
    Column(
        "user_id", BigId, ForeignKey("namespace.id", ondelete="CASCADE"), nullable=True, index=True
    ),
    Column("team_id", BigId, ForeignKey("team.id", ondelete="CASCADE"), nullable=True, index=True),
    Column(
        "robot_id", BigId, ForeignKey("robot.id", ondelete="CASCADE"), nullable=True, index=True
    ),
    Column("role", String(16), nullable=False),
    UniqueConstraint("repository_id", "user_id"),
    UniqueConstraint("repository_id", "team_id"),
    UniqueConstraint("repository_id", "robot_id"),
)

# -- token auth (issue 12): refresh tokens (docker's identity tokens), stored keyed-hashed --

refresh_token = Table(
    "refresh_token",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # hex HMAC-SHA256 of the token under the registry_secret "refresh-token-hmac-key"
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("subject_kind", String(16), nullable=False),
    Column("subject_name", String(255), nullable=False, index=True),
    Column("subject_id", BigInteger, nullable=True),
    Column("audience", String(255), nullable=False),
    Column("client_id", String(255), nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
)

# -- garbage collection (issue 14): a queue of rows to re-check, bytes left to delete -------

# Hints, never authority: the events that can make garbage (a tag purged, a manifest or
# legacy image collected, a link expired, a repository deleted) name the rows that may now
# be unreferenced; GC re-checks each under locks before deleting it.
gc_candidate = Table(
    "gc_candidate",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # manifest | legacy_image | blob
    Column("target_id", BigInteger, nullable=False),
    Column("due_ms", BigInteger, nullable=False),  # not looked at before then (grace windows)
    UniqueConstraint("kind", "target_id"),
    Index("ix_gc_candidate_kind_due", "kind", "due_ms"),
)

# Written in the transaction that deletes a blob row, removed once the bytes are gone: a
# crash between the two leaves the work here for the next cycle, never a row without bytes.
gc_pending_delete = Table(
    "gc_pending_delete",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("location_name", String(255), nullable=False),
    # The object's key follows from these (storage/keys.py): the digest if content
    # addressed, else the blob's uuid (derived images; never reused).
    Column("digest", String(200), nullable=True),
    Column("blob_uuid", String(36), nullable=False),
    Column("content_addressed", Boolean, nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
)

# Phase 1 finds dead tags by their end, across repositories (hidden temp tags and visible
# ones apart: only the latter wait for a time-machine window); marked repositories by
# state; the shortest time-machine window by an index probe.
Index("ix_tag_hidden_lifetime_end_ms", tag.c.hidden, tag.c.lifetime_end_ms)
Index("ix_repository_state", repository.c.state)
Index("ix_namespace_removed_tag_expiration_s", namespace.c.removed_tag_expiration_s)
