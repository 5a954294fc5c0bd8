"""Media types the registry knows: manifests, configs and label values."""

from __future__ import annotations

DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA2_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA2_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA2_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED_MANIFEST})
LIST_TYPES = frozenset({DOCKER_SCHEMA2_MANIFEST_LIST, OCI_IMAGE_INDEX})
IMAGE_MANIFEST_TYPES = frozenset({DOCKER_SCHEMA2_MANIFEST, OCI_IMAGE_MANIFEST}) | SCHEMA1_TYPES
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | LIST_TYPES
IMAGE_CONFIG_TYPES = frozenset({DOCKER_SCHEMA2_CONFIG, OCI_IMAGE_CONFIG})

TEXT_PLAIN = "text/plain"
APPLICATION_JSON = "application/json"
# Media types a label value may carry (Quay's MediaType table, minus the appr package types).
LABEL_MEDIA_TYPES = frozenset({TEXT_PLAIN, APPLICATION_JSON, "text/markdown"}) | MANIFEST_TYPES


def is_manifest_list(media_type: str) -> bool:
    return media_type in LIST_TYPES
