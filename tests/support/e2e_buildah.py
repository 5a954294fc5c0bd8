"""buildah (Debian ``buildah``) for the end-to-end tests: root, throw-away vfs storage.

Like ``support.e2e_clients.Podman``: ``--root`` in the test's tmp dir, ``--runroot`` in a short
/tmp dir, vfs, chroot isolation, and the test-owned registries.conf / auth file / policy of a
``ClientConfig``. Nothing here runs a container: ``buildah from scratch`` + ``copy`` + ``commit``
needs no runtime.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.e2e_clients import ClientConfig, run


@dataclass(frozen=True)
class Buildah:
    config: ClientConfig
    root: Path
    runroot: Path
    binary: str = "buildah"

    @classmethod
    def create(cls, config: ClientConfig, root: Path, binary: str = "buildah") -> Buildah:
        runroot = Path(tempfile.mkdtemp(prefix="e2e-buildah-", dir="/tmp"))
        buildah = cls(config, root, runroot, binary)
        for sub in ("storage", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        buildah.storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{root / "storage"}"\nrunroot = "{runroot}"\n'
        )
        return buildah

    @property
    def storage_conf(self) -> Path:
        return self.root / "storage.conf"

    def env(self) -> dict[str, str]:
        env = self.config.env()
        env.update(
            {
                "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
                "XDG_RUNTIME_DIR": str(self.runroot),
                "BUILDAH_ISOLATION": "chroot",
                "TMPDIR": str(self.root / "tmp"),
            }
        )
        return env

    def __call__(
        self, *args: str, timeout: float = 300, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [self.binary, "--root", str(self.root / "storage"), "--runroot",
                   str(self.runroot), "--storage-driver", "vfs", *args]  # fmt: skip
        return run(command, timeout=timeout, env=self.env(), check=check, input=input)

    def login(
        self, host: str, username: str, password: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self("login", "--tls-verify=false", "--username", username, "--password-stdin",
                    host, input=password + "\n", timeout=60, check=check)  # fmt: skip

    def image_from_files(self, files: dict[str, bytes], ref: str, labels: dict[str, str]) -> str:
        """``buildah from scratch``, one ``copy`` per file, labels, ``commit`` (OCI) as
        ``ref``; returns the image ID."""
        container = self("from", "scratch", timeout=60).stdout.strip()
        staging = self.root / "staging"
        try:
            for name, content in files.items():
                source = staging / name
                source.parent.mkdir(parents=True, exist_ok=True)
                source.write_bytes(content)
                self("copy", container, str(source), "/" + name, timeout=60)
            for key, value in labels.items():
                self("config", "--label", f"{key}={value}", container, timeout=60)
            return self("commit", "--format", "oci", "--rm", container, ref).stdout.strip()
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def push(self, ref: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("push", "--tls-verify=false", "--signature-policy", str(self.config.policy),
                    ref, check=check)  # fmt: skip

    def pull(self, ref: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("pull", "--tls-verify=false", "--signature-policy", str(self.config.policy),
                    ref, check=check)  # fmt: skip

    def inspect_image(self, ref: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self("inspect", "--type", "image", ref).stdout)
        return loaded

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)
