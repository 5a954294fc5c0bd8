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


# -- registry protocol errors (services raise them; http maps them to OCI codes) ----------


class RepositoryNotFoundError(MoorageError):
    """The repository does not exist (NAME_UNKNOWN)."""


class AccessDeniedError(MoorageError):
    """The operation is refused whoever asks: disabled namespace, read-only repository."""


class OperationUnsupportedError(MoorageError):
    """The operation is not offered here (UNSUPPORTED)."""


class BlobNotFoundError(MoorageError):
    """The blob is not linked to the repository (BLOB_UNKNOWN)."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"blob unknown to registry: {digest}")
        self.digest = digest


class UploadNotFoundError(MoorageError):
    """No such upload session in this repository (BLOB_UPLOAD_UNKNOWN)."""


class UploadInvalidError(MoorageError):
    """The upload session cannot continue (BLOB_UPLOAD_INVALID)."""


class UploadRangeError(MoorageError):
    """A chunk does not start where the session ends (416)."""

    def __init__(self, upload_id: str, size: int) -> None:
        super().__init__(f"chunk out of order: the upload holds {size} bytes")
        self.upload_id = upload_id
        self.size = size


class UploadBusyError(UploadRangeError):
    """Another request is writing the session right now (416: its range is not satisfiable
    until that request ends)."""

    def __init__(self, upload_id: str, size: int) -> None:
        super().__init__(upload_id, size)
        self.args = (f"the upload is in use by another request; it holds {size} bytes",)


class TooManyRequestsError(MoorageError):
    """A limit on open resources was reached (429 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestBodyError(MoorageError):
    """The request body could not be read: the client went away, sent a malformed chunked
    encoding, or sent nothing for too long (the request is dropped, nothing is changed)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class DigestMismatchError(InvalidDigestError):
    """Content does not hash to the digest the client gave (DIGEST_INVALID); ``digest`` is
    the one the client gave (the error body's ``detail``), ``actual`` what the bytes hash to."""

    def __init__(self, digest: str, actual: str) -> None:
        super().__init__("the content does not hash to the digest given")
        self.digest = digest
        self.actual = actual


class SizeInvalidError(MoorageError):
    """The bytes received disagree with the declared length (SIZE_INVALID)."""


class ManifestNotFoundError(MoorageError):
    """No such tag or manifest in the repository (MANIFEST_UNKNOWN)."""


class ManifestTooLargeError(ManifestError):
    """The manifest is larger than the configured limit (413)."""


class ManifestMediaTypeError(ManifestError):
    """The manifest's media type is not one the registry stores (415)."""


class NameMismatchError(InvalidNameError):
    """A schema 1 manifest names another repository (NAME_INVALID)."""


class TagInvalidError(MoorageError):
    """A tag reference breaks the grammar, or a schema 1 manifest names another tag."""


class PaginationInvalidError(MoorageError):
    """``n`` is not a non-negative integer (PAGINATION_NUMBER_INVALID)."""


class InvalidRequestError(MoorageError):
    """A REST API request whose input breaks a rule; ``field`` names the part at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(MoorageError):
    """A REST API resource that does not exist (or that the caller may not know of)."""


class ConflictError(MoorageError):
    """A compare-and-set lost: the resource changed since the caller last read it (409)."""
