"""``GET /c1/torrent/<name>/blobs/<digest>``: a blob's ``.torrent`` (docs/torrents.md).

``<name>`` is the whole repository name, slashes and all: the digest is the last segment and
the literal ``blobs`` before it ends the name (the route table's ``{name:path}`` is greedy),
so a repository with a component called ``blobs`` is still read right. The web seed URL it
names is served by the blob GET itself, behind the seam's ``Access.WEB_SEED``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from moorage.http.access import caller_of
from moorage.http.v2.common import on_repository, repository, services
from moorage.services.torrents import MEDIA_TYPE, TorrentsDisabledError


async def get_torrent(request: Request) -> Response:
    torrents = services(request).torrents
    if torrents is None:
        await repository(request)  # an unknown repository is NAME_UNKNOWN on every route
        raise TorrentsDisabledError()
    caller = caller_of(request)
    holder = None if caller.open else caller.principal
    torrent = await on_repository(
        request,
        torrents.torrent_file,
        request.path_params["digest"],
        holder,
        str(request.base_url),
    )
    headers = {
        "Content-Disposition": f'attachment; filename="{torrent.file_name}"',
        "Cache-Control": "private, no-store",  # it holds a URL signed for this caller
    }
    return Response(torrent.content, media_type=MEDIA_TYPE, headers=headers)
