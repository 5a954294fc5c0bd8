"""``moorage tag history|restore|expire`` and ``moorage label list|add|rm``: the REST API's
tag and label operations from the command line, thin over the same services
(``services/tag_admin.py``), on the configured database. Exit status: 0 done; 1 refused (no
such repository, tag, manifest or label; outside the time machine); 2 bad usage."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from moorage.cli.accounts import Output, OutputOption, _accounts, _emit, _table
from moorage.cli.options import ConfigOption, DatabaseUrlOption

if TYPE_CHECKING:
    from moorage.app import Accounts
    from moorage.domain.records import Label, RepositoryReference, Tag

tag_app = typer.Typer(help="Tag history, restores and expiry.", no_args_is_help=True)
label_app = typer.Typer(help="Manifest labels.", no_args_is_help=True)

RepositoryArgument = Annotated[str, typer.Argument(help="namespace/repository")]
DigestArgument = Annotated[str, typer.Argument(help="Manifest digest (sha256:...).")]
_DURATION = re.compile(r"^([0-9]{1,6})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@contextmanager
def _repository(
    config: Any, database_url: str | None, name: str, *, read_only: bool = False
) -> Iterator[tuple[Accounts, RepositoryReference]]:
    from moorage.services.repositories import Resolution

    with _accounts(config, database_url, read_only=read_only) as handle:
        resolution = Resolution.READ if read_only else Resolution.WRITE
        yield handle, handle.resolver.resolve(name, resolution)


def _tag_row(tag: Tag) -> list[str]:
    def moment(ms: int | None) -> str:
        return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()

    return [
        tag.name,
        tag.manifest_digest or "-",
        moment(tag.lifetime_start_ms),
        moment(tag.lifetime_end_ms),
        "yes" if tag.reversion else "no",
    ]


def _tag_data(tag: Tag) -> dict[str, Any]:
    return {
        "name": tag.name,
        "manifest_digest": tag.manifest_digest,
        "start_ts": tag.lifetime_start_ts,
        "end_ts": tag.lifetime_end_ts,
        "reversion": tag.reversion,
    }


_TAG_HEADERS = ["TAG", "MANIFEST", "START", "END", "RESTORED"]


@tag_app.command("history")
def tag_history(
    repository: RepositoryArgument,
    tag: Annotated[str | None, typer.Option("--tag", help="Only this tag's versions.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only alive tags.")] = False,
    page: Annotated[int, typer.Option(min=1, help="Page number.")] = 1,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Versions per page.")] = 50,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Tag versions, newest first: alive ones and those the time machine keeps."""
    with _repository(config, database_url, repository, read_only=True) as (handle, found):
        found_page = handle.tags.history(found, page=page, limit=limit, tag=tag, active_only=active)
    data = {
        "tags": [_tag_data(t) for t in found_page.tags],
        "page": found_page.page,
        "has_additional": found_page.has_additional,
    }
    text = _table([_tag_row(t) for t in found_page.tags], _TAG_HEADERS)
    if found_page.has_additional:
        text += f"\n(more: --page {page + 1})"
    _emit(output, data, text)


@tag_app.command("restore")
def tag_restore(
    repository: RepositoryArgument,
    tag: Annotated[str, typer.Argument(help="The tag to put back.")],
    digest: DigestArgument,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Point a tag at a manifest it pointed at before (within the time machine's window)."""
    with _repository(config, database_url, repository) as (handle, found):
        restored = handle.tags.restore(found, tag, digest)
    _emit(output, _tag_data(restored), f"{repository}:{restored.name} -> {digest}")


def _expiry(at: str | None, after: str | None, never: bool) -> datetime | None:
    given = [at is not None, after is not None, never]
    if sum(given) != 1:
        raise typer.BadParameter("give one of --at, --in or --never")
    if never:
        return None
    if after is not None:
        match = _DURATION.fullmatch(after)
        if match is None:
            raise typer.BadParameter("a duration like 90m, 12h, 3d or 2w", param_hint="--in")
        return datetime.now(UTC) + timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    assert at is not None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise typer.BadParameter("an ISO 8601 time", param_hint="--at") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@tag_app.command("expire")
def tag_expire(
    repository: RepositoryArgument,
    tag: Annotated[str, typer.Argument(help="The tag.")],
    at: Annotated[str | None, typer.Option("--at", help="When (ISO 8601).")] = None,
    after: Annotated[str | None, typer.Option("--in", help="How long from now: 12h, 3d.")] = None,
    never: Annotated[bool, typer.Option("--never", help="Never expire.")] = False,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Set when a tag expires (clamped to between 1 hour and 104 weeks after it was set)."""
    moment = _expiry(at, after, never)
    with _repository(config, database_url, repository) as (handle, found):
        changed = handle.tags.set_expiration(found, tag, moment)
    end = _tag_row(changed)[3]
    _emit(output, _tag_data(changed), f"{repository}:{changed.name} expires {end}")


def _label_data(label: Label) -> dict[str, str]:
    return {
        "id": label.uuid,
        "key": label.key,
        "value": label.value,
        "source_type": label.source_type_name,
        "media_type": label.media_type_name,
    }


@label_app.command("list")
def label_list(
    repository: RepositoryArgument,
    digest: DigestArgument,
    prefix: Annotated[str | None, typer.Option("--filter", help="Keys starting with.")] = None,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """A manifest's labels (from its image config, or added through the API)."""
    with _repository(config, database_url, repository, read_only=True) as (handle, found):
        labels = handle.tags.labels(found, digest, prefix)
    rows = [[x.uuid, x.key, x.value[:60], x.source_type_name] for x in labels]
    _emit(
        output,
        {"labels": [_label_data(x) for x in labels]},
        _table(rows, ["ID", "KEY", "VALUE", "SOURCE"]),
    )


@label_app.command("add")
def label_add(
    repository: RepositoryArgument,
    digest: DigestArgument,
    key: Annotated[str, typer.Argument(help="Label key.")],
    value: Annotated[str, typer.Argument(help="Label value.")],
    media_type: Annotated[
        str | None, typer.Option("--media-type", help="text/plain or application/json.")
    ] = None,
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Add a label to a manifest (source api)."""
    with _repository(config, database_url, repository) as (handle, found):
        label = handle.tags.add_label(found, digest, key, value, media_type)
    _emit(output, _label_data(label), f"added label {label.key} ({label.uuid})")


@label_app.command("rm")
def label_rm(
    repository: RepositoryArgument,
    digest: DigestArgument,
    label_id: Annotated[str, typer.Argument(help="The label's id (see 'label list').")],
    output: OutputOption = Output.TEXT,
    config: ConfigOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Remove a label added through the API (labels from the image config stay)."""
    with _repository(config, database_url, repository) as (handle, found):
        removed = handle.tags.delete_label(found, digest, label_id)
    _emit(output, _label_data(removed), f"removed label {removed.key}")
