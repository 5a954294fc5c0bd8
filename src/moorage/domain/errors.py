"""Domain errors. The HTTP layer maps them to protocol errors in one table."""


class MoorageError(Exception):
    """Base of every error Moorage raises on purpose."""


class DataModelError(MoorageError):
    """A registry data model operation was refused (Quay's DataModelException)."""


class InvalidLabelKeyError(DataModelError):
    """A label key does not follow the label key grammar."""


class InvalidMediaTypeError(DataModelError):
    """A media type is not one the registry knows for labels."""


class ImmutableLabelError(DataModelError):
    """Only labels whose source type is mutable (``api``) may be deleted."""


class UnknownSignerError(DataModelError):
    """A derived-image signature names a signer kind that is not configured."""


class UnknownLocationError(DataModelError):
    """A storage location name is not one of the configured locations."""


class ExtraNotLoadedError(MoorageError):
    """An optional part of a record was read without having been requested."""


class InvalidDigestError(MoorageError):
    """A digest string does not follow the digest grammar or names an unsupported algorithm."""


class InvalidNameError(MoorageError):
    """A namespace, repository or tag name does not follow its grammar."""


class ManifestError(MoorageError):
    """A manifest could not be parsed or validated."""


class ConfigError(MoorageError):
    """Configuration is invalid; the message names the offending key."""


class BlobUnknownError(DataModelError):
    """A manifest references a blob the repository cannot see."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"blob unknown to the repository: {digest}")
        self.digest = digest


class ManifestUnknownError(DataModelError):
    """A manifest list references a manifest the repository does not hold."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"manifest unknown to the repository: {digest}")
        self.digest = digest
