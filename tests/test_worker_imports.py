"""What a server worker imports: heavy optional packages stay out until a request needs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Each is several MB of RSS in every worker: cryptography (schema1 signing only), rich and
# pygments (structlog's pretty tracebacks, never rendered), yaml (config files only).
NOT_IN_A_WORKER = ("cryptography", "rich", "pygments", "yaml")

_BUILD_A_WORKER_APP = """
import json, sys
from moorage.app import asgi_from_env
asgi_from_env()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_a_worker_builds_its_app_without_the_heavy_optional_packages(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MOORAGE_")}
    env.update({"MOORAGE_DATA_DIR": str(tmp_path), "MOORAGE_AUTO_MIGRATE": "false"})
    done = subprocess.run(
        [sys.executable, "-c", _BUILD_A_WORKER_APP],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = set(json.loads(done.stdout.splitlines()[-1]))
    assert "moorage" in imported
    assert imported.isdisjoint(NOT_IN_A_WORKER), sorted(imported & set(NOT_IN_A_WORKER))


def test_schema1_signing_still_loads_cryptography_when_used() -> None:
    script = (
        "import sys\n"
        "from moorage.domain.manifests import Schema1Signer\n"
        "assert 'cryptography' not in sys.modules\n"
        "print(len(Schema1Signer.generate().key_id), 'cryptography' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["59", "True"]  # 48 base32 characters in groups of four
