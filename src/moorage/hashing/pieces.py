"""Resumable BitTorrent piece hashing (SHA-1 of consecutive fixed-length pieces).

State between chunks is two values, both plain bytes:

* ``piece_hashes``: concatenated 20-byte SHA-1 digests of the *completed* pieces;
* ``partial_state``: a :class:`~moorage.hashing.resumable.ResumableHasher` SHA-1 state of the
  current, incomplete piece, or ``None`` when the stream is exactly at a piece boundary (including
  the very start). It is never an empty-piece state: ``None`` means "no bytes of the next piece".

The byte offset within the current piece is not stored separately: it is the message length of
the partial SHA-1 context (derived from its ``Nl``/``Nh`` bit counters), 0 when ``partial_state``
is ``None``. The piece length itself is not stored either; the caller keeps it (it is fixed per
upload) and a partial state at or beyond it is rejected.
"""

from __future__ import annotations

from moorage.hashing.errors import InvalidHashStateError
from moorage.hashing.resumable import Buffer, ResumableHasher

PIECE_DIGEST_SIZE = 20


class PieceHasher:
    """Splits a byte stream into ``piece_length``-byte pieces and SHA-1s each of them."""

    __slots__ = ("_current", "_offset", "_piece_length", "_pieces")

    def __init__(
        self, piece_length: int, piece_hashes: bytes = b"", partial_state: bytes | None = None
    ) -> None:
        if piece_length <= 0:
            raise ValueError(f"piece_length must be positive, not {piece_length}")
        if len(piece_hashes) % PIECE_DIGEST_SIZE:
            raise InvalidHashStateError(
                f"piece_hashes is {len(piece_hashes)} bytes, not a multiple of {PIECE_DIGEST_SIZE}"
            )
        self._piece_length = piece_length
        self._pieces = bytearray(piece_hashes)
        self._current: ResumableHasher | None = None
        self._offset = 0
        if partial_state is not None:
            current = ResumableHasher.from_state(partial_state)
            if current.algorithm != "sha1":
                raise InvalidHashStateError(
                    f"partial piece state is {current.algorithm}, expected sha1"
                )
            offset = current.bytes_hashed
            if offset >= piece_length:
                raise InvalidHashStateError(
                    f"partial piece state holds {offset} bytes, piece length is {piece_length}"
                )
            if offset:
                self._current, self._offset = current, offset
        else:
            ResumableHasher.new("sha1")  # fail fast when libcrypto is unavailable

    @property
    def piece_length(self) -> int:
        return self._piece_length

    @property
    def piece_hashes(self) -> bytes:
        """Concatenated SHA-1 digests of the completed pieces."""
        return bytes(self._pieces)

    @property
    def piece_offset(self) -> int:
        """Bytes of the current, incomplete piece hashed so far (0 at a piece boundary)."""
        return self._offset

    @property
    def bytes_hashed(self) -> int:
        return len(self._pieces) // PIECE_DIGEST_SIZE * self._piece_length + self._offset

    @property
    def partial_state(self) -> bytes | None:
        """Exported SHA-1 state of the incomplete piece, or ``None`` at a piece boundary."""
        if self._current is None:
            return None
        return self._current.export_state()

    def update(self, data: Buffer) -> None:
        """Hash more of the stream; pieces may start and end anywhere within ``data``."""
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
        pos, end, length = 0, len(view), self._piece_length
        while pos < end:
            current = self._current
            if current is None:
                current = self._current = ResumableHasher.new("sha1")
            take = min(end - pos, length - self._offset)
            current.update(view[pos : pos + take])
            pos += take
            self._offset += take
            if self._offset == length:
                self._pieces += current.digest()
                self._current, self._offset = None, 0

    def final_pieces(self) -> bytes:
        """Completed digests plus the digest of the trailing partial piece, if it is non-empty."""
        if self._current is None:
            return bytes(self._pieces)
        return bytes(self._pieces) + self._current.digest()

    def __repr__(self) -> str:
        return (
            f"<PieceHasher piece_length={self._piece_length} "
            f"pieces={len(self._pieces) // PIECE_DIGEST_SIZE} offset={self._offset}>"
        )
