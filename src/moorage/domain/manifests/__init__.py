"""Pure manifest handling: parsing and validating every supported manifest type,
schema1 signing, and the schema2/OCI → V1 legacy chain. No I/O, no other moorage layers."""

from moorage.domain.manifests.jws import Schema1Signer, libtrust_key_id, sign_schema1
from moorage.domain.manifests.legacy import legacy_chain_from_config, schema1_from_image
from moorage.domain.manifests.model import (
    DOCKER_LAYER_GZIP,
    UNKNOWN_SIZE,
    Descriptor,
    ManifestUnverifiedError,
    ParsedManifest,
    Schema1Info,
    V1Entry,
)
from moorage.domain.manifests.parse import parse_manifest
from moorage.domain.manifests.schema1 import build_schema1_manifest

__all__ = [
    "DOCKER_LAYER_GZIP",
    "UNKNOWN_SIZE",
    "Descriptor",
    "ManifestUnverifiedError",
    "ParsedManifest",
    "Schema1Info",
    "Schema1Signer",
    "V1Entry",
    "build_schema1_manifest",
    "legacy_chain_from_config",
    "libtrust_key_id",
    "parse_manifest",
    "schema1_from_image",
    "sign_schema1",
]
