"""Upload-session metadata shared by the local drivers: ``{"size": <committed bytes>}``.

The caller persists the dict (it is JSON-able) and hands it back; the committed size in it is
the truth, so bytes a failed append left behind past that size never count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from moorage.storage.driver import StorageError, UploadMetadata

SIZE = "size"


def metadata_for(size: int) -> UploadMetadata:
    return {SIZE: size}


def committed_size(metadata: UploadMetadata) -> int:
    """The committed size recorded in ``metadata``; StorageError if the dict is not ours."""
    size = metadata.get(SIZE) if isinstance(metadata, dict) else None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise StorageError(f"malformed upload metadata: {metadata!r}")
    return size


def check_offset(offset: int, available: int) -> None:
    """An append may restart anywhere within the session's data, but never leave a hole."""
    if not isinstance(offset, int) or offset < 0 or offset > available:
        raise ValueError(f"upload offset {offset} outside 0..{available}")


def byte_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-empty chunks of ``chunks``, refusing anything that is not bytes-like."""
    for chunk in chunks:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"storage chunks must be bytes, not {type(chunk).__name__}")
        if chunk:
            yield chunk
