"""Credentials for the benches that run with auth on: Moorage's users, a public and a
private repository and a bearer token from its ``/v2/auth`` (as docker gets one), and for
the reference (Distribution with ``auth: token``) tokens the bench signs itself: ES256 with
an EC P-256 key whose self-signed certificate is the reference's ``rootcertbundle`` and
travels in each token's ``x5c`` header."""

from __future__ import annotations

import datetime
import os
import re
import secrets
import subprocess
import time
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.servers import Server, moorage_command

OWNER = "bench"  # the superuser that pushes (its namespace holds the repositories)
READER = "reader"  # an ordinary user granted read on the private repository
REFERENCE_SERVICE = "bench-reference"
REFERENCE_ISSUER = "bench"
_SERVICE = re.compile(r'service="([^"]+)"')


def basic(user: str, password: str) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def owner_settings(password: str) -> dict[str, str]:
    """``moorage serve`` with auth on and the pushing superuser; tokens outlive any run."""
    return {
        "MOORAGE_AUTH__ENABLED": "true",
        "MOORAGE_AUTH__TOKEN_LIFETIME_S": "86400",
        "MOORAGE_INITIAL_SUPERUSER": OWNER,
        "MOORAGE_INITIAL_SUPERUSER_PASSWORD": password,
    }


def moorage_cli(server: Server, *args: str, stdin: str | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["MOORAGE_DATA_DIR"] = str(server.root / "data")
    done = subprocess.run(
        [*moorage_command(), *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"moorage {' '.join(args)}: {done.stderr or done.stdout}")


def moorage_token(server: Server, user: str, password: str, scope: str) -> str:
    """A bearer token as docker gets one: the challenge names the service, /v2/auth signs."""
    challenge = httpx.get(server.base_url + "/v2/", timeout=5).headers["www-authenticate"]
    found = _SERVICE.search(challenge)
    if found is None:
        raise RuntimeError(f"no service in the challenge {challenge!r}")
    answer = httpx.get(
        server.base_url + "/v2/auth",
        params={"service": found.group(1), "scope": scope},
        auth=(user, password),
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def share_on_moorage(server: Server, public: str, private: str) -> str:
    """``public`` made public, a reader granted read on ``private``; the reader's bearer
    token for it (both repositories already pushed by the owner)."""
    password = secrets.token_urlsafe(18)
    moorage_cli(server, "repo", "visibility", public, "public")
    moorage_cli(server, "user", "create", READER, "--password-stdin", stdin=password + "\n")
    moorage_cli(server, "repo", "grant", private, "--role", "read", "--user", READER)
    return moorage_token(server, READER, password, f"repository:{private}:pull")


@dataclass(frozen=True)
class ReferenceTokens:
    """The signing key and certificate the reference trusts (``auth.token``)."""

    key: ec.EllipticCurvePrivateKey
    certificate_der: bytes
    bundle: Path

    @staticmethod
    def create(directory: Path) -> ReferenceTokens:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "moorage bench token signer")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        bundle = directory / "token-signer.pem"
        bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return ReferenceTokens(key, certificate.public_bytes(serialization.Encoding.DER), bundle)

    def config(self) -> str:
        """The ``auth:`` section of the reference's configuration (2.8 and 3.x alike)."""
        return (
            "auth:\n  token:\n    realm: http://127.0.0.1:9/token\n"
            f"    service: {REFERENCE_SERVICE}\n    issuer: {REFERENCE_ISSUER}\n"
            f"    rootcertbundle: {self.bundle}\n"
        )

    def mint(self, repository: str, actions: tuple[str, ...] = ("pull",)) -> str:
        now = int(time.time())
        claims = {
            "iss": REFERENCE_ISSUER,
            "sub": READER,
            "aud": REFERENCE_SERVICE,
            "exp": now + 86400,
            "nbf": now - 60,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [{"type": "repository", "name": repository, "actions": list(actions)}],
        }
        header = {"x5c": [b64encode(self.certificate_der).decode()]}
        return jwt.encode(claims, self.key, algorithm="ES256", headers=header)
