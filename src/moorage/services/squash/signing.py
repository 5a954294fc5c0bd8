"""Detached, ASCII-armored GPG signatures of derived images (python-gnupg over ``gpg``).

The key lives in a GnuPG home directory (``derived_images.gnupg_home``) and is named by its
id or fingerprint; its passphrase, if any, comes from the settings (environment). The
public half is what clients verify with (``/c1/keys/squash.asc``).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import gnupg  # type: ignore[import-untyped]

from moorage.domain.errors import ConfigError

BUFFER = 1 << 20


class SigningError(Exception):
    """gpg did not sign (a wrong passphrase, a key gone from the home directory)."""


@dataclass(slots=True)
class GpgSigner:
    home: Path
    key_id: str
    passphrase: str | None = None
    _public_key: str | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _gpg(self) -> gnupg.GPG:
        gpg = gnupg.GPG(gnupghome=str(self.home))
        gpg.buffer_size = BUFFER
        return gpg

    def check(self) -> None:
        """At start: the secret key must be there (a typo should stop the server, not
        every later signature)."""
        try:
            secret = self._gpg().list_keys(secret=True, keys=[self.key_id])
        except (OSError, ValueError) as exc:
            raise ConfigError(f"derived_images.gnupg_home: gpg cannot use it ({exc})") from None
        if not secret:
            raise ConfigError(
                f"derived_images.signing_key_id: no secret key {self.key_id[:100]!r} in {self.home}"
            )
        try:  # and it must sign: a wrong or missing passphrase shows here
            self.sign(io.BytesIO(b"moorage signing probe"))
        except SigningError as exc:
            raise ConfigError(f"derived_images.signing_key_id: {exc}") from None

    def sign(self, data: IO[bytes]) -> str:
        """The armored detached signature of ``data``'s bytes."""
        result = self._gpg().sign_file(
            data, keyid=self.key_id, passphrase=self.passphrase, detach=True, binary=False
        )
        text = str(result)
        if not result or "BEGIN PGP SIGNATURE" not in text:
            failures = [
                line.removeprefix("gpg: signing failed: ")
                for line in (result.stderr or "").splitlines()
                if line.startswith("gpg: signing failed: ")
            ]
            reason = failures[-1] if failures else result.status or "no signature made"
            raise SigningError(f"gpg did not sign: {reason[:100]}")
        return text

    def public_key(self) -> str:
        """The armored public key, exported once per process."""
        with self._lock:
            if self._public_key is None:
                exported = self._gpg().export_keys(self.key_id)
                if "BEGIN PGP PUBLIC KEY BLOCK" not in exported:
                    raise SigningError("gpg exported no public key")
                self._public_key = exported
            return self._public_key


def generate_key(home: Path, name: str, email: str, passphrase: str | None) -> str:
    """A new RSA 3072 signing key in ``home`` (created 0700); its fingerprint."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    gpg = gnupg.GPG(gnupghome=str(home))
    protection: dict[str, str] = {} if passphrase is None else {"passphrase": passphrase}
    params = gpg.gen_key_input(
        key_type="RSA",
        key_length=3072,
        key_usage="sign",
        name_real=name,
        name_email=email,
        expire_date=0,
        no_protection=passphrase is None,
        **protection,
    )
    key = gpg.gen_key(params)
    if not key.fingerprint:
        raise SigningError(f"gpg made no key: {key.status or key.stderr[-200:]}")
    return str(key.fingerprint)
