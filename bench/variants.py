"""The two ways the small-request rows ask: anonymously on a public repository, and with a
bearer token on a private one. Moorage runs with auth on (its default): the pushing owner
makes one repository public and grants a reader read on the other, whose token comes from
``/v2/auth``. Distribution has no anonymous-and-token mode in one process, so the bearer
rows go to a second reference process on the same storage with ``auth: token``, whose
tokens the bench signs (``bench.access.ReferenceTokens``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import access, images
from bench.load import Target, Variant
from bench.servers import BEFORE, MOORAGE, REFERENCE, Server, start_reference

PUBLIC_REPO = "bench/latency"
PRIVATE_REPO = "bench/private"


@dataclass(frozen=True)
class SmallRequests:
    seeded: images.Seeded
    variants: list[Variant]
    reference_with_tokens: Server  # stopped by the caller with the other servers


def prepare(servers: list[Server], workdir: Path, reference_bin: str) -> SmallRequests:
    """``servers``: the reference, Moorage and, with ``--before-src``, the older checkout
    (asked the same way as Moorage, right after it)."""
    by_name = {server.name: server for server in servers}
    reference = by_name[REFERENCE]
    seeded = images.seed_latency_image(servers, PUBLIC_REPO)
    if images.seed_latency_image(servers, PRIVATE_REPO).manifest_digest != seeded.manifest_digest:
        raise RuntimeError("the private repository's image differs from the public one's")
    moorages = [by_name[MOORAGE], *([by_name[BEFORE]] if BEFORE in by_name else [])]
    tokens_of = {m.name: access.share_on_moorage(m, PUBLIC_REPO, PRIVATE_REPO) for m in moorages}
    tokens = access.ReferenceTokens.create(workdir)
    with_tokens = start_reference(
        workdir,
        reference_bin,
        name="reference-token-auth",
        storage=reference.root / "storage",
        auth=tokens.config(),
    )
    anonymous = Variant(
        "anon",
        "anonymous, public",
        (
            Target(REFERENCE, reference.base_url, PUBLIC_REPO, None),
            *(Target(m.name, m.base_url, PUBLIC_REPO, None) for m in moorages),
        ),
    )
    bearer = Variant(
        "bearer",
        "bearer, private",
        (
            Target(
                REFERENCE, with_tokens.base_url, PRIVATE_REPO, "Bearer " + tokens.mint(PRIVATE_REPO)
            ),
            *(
                Target(m.name, m.base_url, PRIVATE_REPO, "Bearer " + tokens_of[m.name])
                for m in moorages
            ),
        ),
    )
    return SmallRequests(seeded, [anonymous, bearer], with_tokens)
