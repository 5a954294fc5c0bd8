"""The GPG signer over a real ``gpg``: a passphrase-protected key signs with its passphrase
only, and a wrong one stops the start (``check``) with gpg's reason; the signature verifies
with ``gpg --verify`` against the exported public key."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.domain.errors import ConfigError
from moorage.services.squash.signing import GpgSigner, generate_key

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def home() -> Iterator[Path]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is missing (Debian package gnupg)")
    directory = Path(tempfile.mkdtemp(prefix="t-sign-", dir="/tmp"))  # short: the agent socket
    try:
        yield directory
    finally:
        for home in (directory / "key", directory / "verify"):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def test_a_protected_key_signs_only_with_its_passphrase(home: Path) -> None:
    fingerprint = generate_key(home / "key", "Test", "test@example.invalid", PASSPHRASE)
    for wrong in ("not it", None):  # before any right use: the agent has nothing cached
        with pytest.raises(ConfigError, match="did not sign"):
            GpgSigner(home / "key", fingerprint, wrong).check()
    signer = GpgSigner(home / "key", fingerprint, PASSPHRASE)
    signer.check()
    data = b"tarball bytes " * 10_000
    signature = signer.sign(io.BytesIO(data))
    assert signature.startswith("-----BEGIN PGP SIGNATURE-----")

    (home / "data").write_bytes(data)
    (home / "data.asc").write_text(signature)
    (home / "key.asc").write_text(signer.public_key())
    assert "PRIVATE" not in signer.public_key()
    gpg = ["gpg", "--homedir", str(home / "verify"), "--batch"]
    (home / "verify").mkdir(mode=0o700)
    subprocess.run([*gpg, "--import", str(home / "key.asc")], check=True, timeout=60)
    good = subprocess.run(
        [*gpg, "--verify", str(home / "data.asc"), str(home / "data")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    (home / "data").write_bytes(data + b"!")
    bad = subprocess.run(
        [*gpg, "--verify", str(home / "data.asc"), str(home / "data")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0


def test_an_unknown_key_id_is_a_config_error(home: Path) -> None:
    (home / "key").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="no secret key"):
        GpgSigner(home / "key", "0123456789ABCDEF0123").check()
