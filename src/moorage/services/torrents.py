"""BitTorrent files for blobs (``/c1/torrent/...``), with the blob's web seed as the source.

The pieces are the SHA-1 of each ``piece_length`` slice of the blob: recorded when the blob
was pushed with torrents enabled (``UploadService``), or computed here once, streaming the
blob from storage, and kept with ``set_torrent_info`` (first write per piece length wins).
The info dict is the same for every caller (so is its info hash); the web seed URL in
``url-list`` is signed for the caller on a private repository, for anyone on a public one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastbencode import bencode

from moorage.domain.access import Principal
from moorage.domain.digest import Digest
from moorage.domain.errors import AccessDeniedError, BlobNotFoundError, NotFoundError
from moorage.domain.records import Blob, RepositoryReference, TorrentInfo
from moorage.hashing import PieceHasher
from moorage.hashing.pieces import PIECE_DIGEST_SIZE
from moorage.model.interface import TorrentInfos
from moorage.observability import get_logger
from moorage.services.blobs import BlobService
from moorage.services.webseed import WebSeedSigner

log = get_logger(__name__)
MEDIA_TYPE = "application/x-bittorrent"


class TorrentsDisabledError(NotFoundError):
    """Torrents are off on this registry (``torrents.enabled``): 404."""

    def __init__(self) -> None:
        super().__init__("torrents are not enabled on this registry")


class NoTorrentError(NotFoundError):
    """A blob a torrent cannot describe (an empty one): 404."""


class TorrentStore(TorrentInfos, Protocol):
    """The torrent info recorded for blobs."""


@dataclass(frozen=True, slots=True)
class TorrentSettings:
    piece_length: int = 512 * 1024
    announce: str | None = None  # a tracker; None: the web seed alone
    base_url: str | None = None  # where clients reach us; None: the request's own
    created_by: str = "Moorage"


@dataclass(frozen=True, slots=True)
class TorrentFile:
    content: bytes
    file_name: str  # what to save it as: the torrent's name + .torrent


def torrent_name(digest: str) -> str:
    """The file a client saves the blob as: ``sha256-<hex>`` (no colon, which some file
    systems refuse)."""
    parsed = Digest.parse(digest)
    return f"{parsed.algorithm}-{parsed.hex}"


def pieces_fit(info: TorrentInfo, size: int) -> bool:
    """Whether ``info`` has exactly one 20-byte digest per piece of a ``size``-byte blob."""
    count = math.ceil(size / info.piece_length)
    return info.piece_length > 0 and len(info.pieces) == count * PIECE_DIGEST_SIZE


class TorrentService:
    def __init__(
        self,
        model: TorrentStore,
        blobs: BlobService,
        signer: WebSeedSigner,
        settings: TorrentSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model, self.blobs, self.signer, self.settings = model, blobs, signer, settings
        self._clock = clock
        self._computing: dict[int, threading.Lock] = {}
        self._computing_lock = threading.Lock()

    def torrent_file(
        self,
        repository: RepositoryReference,
        digest: str,
        holder: Principal | None,
        base_url: str,
    ) -> TorrentFile:
        """The ``.torrent`` of a blob of ``repository``. ``holder`` is the admitted caller
        (None while auth is off): a private repository's web seed URL is bound to it."""
        blob = self.blobs.stat(repository, digest)
        size = blob.compressed_size or 0
        if size == 0:
            raise NoTorrentError(f"blob {digest} is empty: there is nothing to download")
        user = None
        if holder is not None and not repository.is_public:
            if holder.is_anonymous:
                raise AccessDeniedError("a private repository's torrent needs credentials")
            user = holder.name
        info = self.pieces_of(repository, blob)
        seed = self.signer.sign(
            self.settings.base_url or base_url, repository.full_name, digest, user
        )
        name = torrent_name(digest)
        info_dict: dict[bytes, object] = {
            b"name": name.encode(),
            b"length": size,
            b"piece length": info.piece_length,
            b"pieces": info.pieces,
        }
        if not repository.is_public:
            info_dict[b"private"] = 1  # peers only from the tracker: no DHT, no exchange
        torrent: dict[bytes, object] = {
            b"info": info_dict,
            b"url-list": [seed.url.encode()],
            b"created by": self.settings.created_by.encode(),
            b"creation date": int(self._clock()),
        }
        if self.settings.announce is not None:
            torrent[b"announce"] = self.settings.announce.encode()
        return TorrentFile(bencode(torrent), f"{name}.torrent")

    def pieces_of(self, repository: RepositoryReference, blob: Blob) -> TorrentInfo:
        """The blob's recorded pieces, or computed now from its bytes (and recorded). One
        computation per blob at a time in this process: the others wait and reuse it."""
        size = blob.compressed_size or 0
        recorded = self.model.get_torrent_info(blob)
        if recorded is not None and pieces_fit(recorded, size):
            return recorded
        with self._computing_lock:
            lock = self._computing.setdefault(blob.id, threading.Lock())
        try:
            with lock:
                recorded = self.model.get_torrent_info(blob)
                if recorded is not None and pieces_fit(recorded, size):
                    return recorded
                return self._compute(repository, blob, size, stored=recorded)
        finally:
            with self._computing_lock:
                if self._computing.get(blob.id) is lock and not lock.locked():
                    del self._computing[blob.id]

    def _compute(
        self, repository: RepositoryReference, blob: Blob, size: int, stored: TorrentInfo | None
    ) -> TorrentInfo:
        assert blob.digest is not None
        length = self.settings.piece_length
        content = self.blobs.content(repository, blob.digest)
        hasher = PieceHasher(length)
        for chunk in content.chunks():
            hasher.update(chunk)
        if hasher.bytes_hashed != size:
            log.warning(
                "blob bytes do not match its recorded size",
                digest=blob.digest,
                size=size,
                read=hasher.bytes_hashed,
            )
            raise BlobNotFoundError(blob.digest)
        info = TorrentInfo(length, hasher.final_pieces())
        if stored is not None:
            # A recorded entry that does not fit the blob: serve fresh pieces; keep a new
            # entry only under another piece length (an entry is never overwritten).
            log.warning("recorded torrent pieces do not fit the blob", digest=blob.digest)
            if stored.piece_length == length:
                return info
        recorded = self.model.set_torrent_info(blob, info.piece_length, info.pieces)
        return recorded if pieces_fit(recorded, size) else info
