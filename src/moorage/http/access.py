"""The access seam: every request is authenticated and authorized here, once, before any
handler work, from the access its route declares (``routes.Access``).

Credentials: a bearer token (verified offline, cached by its hash until it expires), Basic
credentials (checked by the throttled login service, remembered briefly), or none (anonymous).
What a route needs is one resource scope (``repository:<name>:pull`` and so on); a caller
without it gets 401 with a challenge naming that scope, whatever the repository's existence,
so private names never leak. A refusal no token can fix (a disabled namespace, read-only mode)
is the handler's 403.

With auth off (``auth.enabled: false``, loopback only) every caller may do everything.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from moorage.domain.access import (
    ANONYMOUS,
    CATALOG_SCOPE,
    REPOSITORY,
    Action,
    Grant,
    Principal,
    PrincipalKind,
    ResourceScope,
    repository_scope,
)
from moorage.domain.errors import AccessDeniedError, RepositoryNotFoundError
from moorage.http.auth.challenges import challenge_for
from moorage.http.auth.credentials import (
    MalformedCredentialsError,
    basic_credentials,
    basic_credentials_in,
    bearer_token,
    bearer_token_in,
    client_address,
)
from moorage.http.context import HttpContext, get_context
from moorage.services.auth_contracts import Authorizer
from moorage.services.logins import AuthServices
from moorage.services.tokens import InvalidTokenError
from moorage.services.torrents import TorrentsDisabledError
from moorage.services.webseed import WebSeedRefusedError

Endpoint = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]
_ACCESS = "moorage.access"
_CALLER = "moorage.caller"
# Anyone while auth is off: may do everything, owns nothing.
OPEN_CALLER_PRINCIPAL = Principal(PrincipalKind.USER, "", superuser=True)


class Access(Enum):
    """What a caller needs on the addressed repository (or registry) to use a route; also
    how the route resolves its repository (see ``Access.resolution``)."""

    NONE = "none"  # no permission at all (health, metrics, the token endpoint)
    LOGIN = "login"  # any valid credentials, or none when anonymous pulls are possible (/v2/)
    PULL = "pull"  # read an existing repository
    PUSH = "push"  # write into an existing repository (upload sessions)
    CREATE = "create"  # write, creating the repository on first push (upload start, manifest)
    DELETE = "delete"  # delete from an existing repository
    CATALOG = "catalog"  # the registry-wide repository listing
    # Pull by a signed URL (a torrent's web seed): the URL is the credential, and the
    # account it names (anyone, for a public repository's) must still be allowed to pull.
    WEB_SEED = "web-seed"
    # The REST API (/api/v1). A repository the caller may not read is "not found" there
    # (404, whether or not it exists); one it reads but may not change is 403.
    API_READ = "api-read"  # read a repository (anyone, if it is public)
    API_WRITE = "api-write"  # change its tags and labels
    API_ADMIN = "api-admin"  # change its visibility or state, delete it
    API_LIST = "api-list"  # anyone: lists show what the caller may see (public ones at least)
    API_CREATE = "api-create"  # a signed-in caller creating a repository (checked by name)
    API_SUPERUSER = "api-superuser"  # registry administration (namespaces)

    @property
    def writes(self) -> bool:
        return self in _WRITES

    @property
    def api(self) -> bool:
        return self.value.startswith("api-")

    @property
    def action(self) -> Action | None:
        return _ACTIONS.get(self)


_ACTIONS = {
    Access.PULL: Action.PULL,
    Access.WEB_SEED: Action.PULL,
    Access.PUSH: Action.PUSH,
    Access.CREATE: Action.PUSH,
    Access.DELETE: Action.DELETE,
    Access.API_READ: Action.PULL,
    Access.API_WRITE: Action.PUSH,
    Access.API_ADMIN: Action.ALL,
}
_WRITES = frozenset(
    {
        Access.PUSH,
        Access.CREATE,
        Access.DELETE,
        Access.API_WRITE,
        Access.API_ADMIN,
        Access.API_CREATE,
        Access.API_SUPERUSER,
    }
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking. ``grant`` is a bearer token's access claim; without one (Basic
    credentials, anonymous) each scope is asked of the authorizer."""

    principal: Principal
    grant: Grant | None = None
    open: bool = False
    presented_credentials: bool = False


class AuthenticationRequiredError(Exception):
    """401 with a ``WWW-Authenticate`` challenge (the error table answers it)."""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.challenge = challenge


def guarded(endpoint: Endpoint, access: Access) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` behind the seam: the caller is admitted for ``access`` first."""

    async def admitted(request: Request) -> Response:
        request.scope[_ACCESS] = access
        await admit(request, access)
        response = endpoint(request)
        return await response if inspect.isawaitable(response) else response

    admitted.__name__ = getattr(endpoint, "__name__", "endpoint")
    return admitted


def route_access(request: Request) -> Access:
    """The access the request's route declared (PULL for anything outside the seam)."""
    access = request.scope.get(_ACCESS, Access.PULL)
    assert isinstance(access, Access)
    return access


def caller_of(request: Request) -> Caller:
    caller = request.scope.get(_CALLER)
    if caller is None:
        return Caller(OPEN_CALLER_PRINCIPAL, open=True)
    assert isinstance(caller, Caller)
    return caller


async def admit(request: Request, access: Access) -> None:
    context = get_context(request)
    if access is Access.WEB_SEED:
        await _admit_web_seed(request)
        return
    auth, authorizer = context.auth, context.authorizer
    if auth is None or not auth.enabled or authorizer is None:
        request.scope[_CALLER] = Caller(OPEN_CALLER_PRINCIPAL, open=True)
        return
    if access is Access.PULL:  # most pulls are decided here, with no thread and no query
        remembered = pull_admitted_from_memory(
            context, request.headers.get("authorization"), request.path_params["name"]
        )
        if remembered is not None:
            request.scope[_CALLER] = remembered
            return
    if access is Access.NONE:
        return
    caller = await _authenticate(request, auth)
    request.scope[_CALLER] = caller
    if access.api:
        await _admit_api(request, access, caller, authorizer, auth)
        return
    scope = _needed_scope(request, access)
    if scope is None:  # /v2/: whoever has credentials; anonymous callers learn the realm
        if caller.principal.is_anonymous and not caller.presented_credentials:
            raise AuthenticationRequiredError(
                "authentication required", challenge_for(request, auth)
            )
        return
    if not await _allows(request, caller, scope, authorizer):
        await _refuse_disabled_namespace(request, scope)
        needed = _challenge_scope(access, scope)
        error = "insufficient_scope" if caller.presented_credentials else None
        raise AuthenticationRequiredError(
            "authentication required" if error is None else "not authorized for this",
            challenge_for(request, auth, [needed], error),
        )


def pull_admitted_from_memory(
    context: HttpContext, authorization: str | None, name: str
) -> Caller | None:
    """The caller, when what the seam already holds admits a pull of repository ``name``:
    auth off; a verified bearer token (cached, or checked here: no I/O) whose account stood
    within the standing check's window and whose grant names the pull; Basic credentials
    checked moments ago, or no credentials, with the pull allowed by a superuser's standing
    or remembered from the authorizer's last answer. None decides nothing: the rest of
    ``admit`` asks the database, and answers every refusal. Never blocks: hot paths on the
    event loop call it (``http/hot.py``)."""
    auth, authorizer = context.auth, context.authorizer
    if auth is None or not auth.enabled or authorizer is None:
        return Caller(OPEN_CALLER_PRINCIPAL, open=True)
    try:
        token = bearer_token_in(authorization)
        basic = None if token is not None else basic_credentials_in(authorization)
    except MalformedCredentialsError:
        return None
    if token is not None:
        try:
            grant = auth.tokens.verify(token)
        except InvalidTokenError:
            return None
        principal = _recent_standing(auth, grant.principal)
        caller = None if principal is None else Caller(principal, grant, presented_credentials=True)
    elif basic is not None:
        remembered = auth.logins.remembered(*basic)
        principal = None if remembered is None else _recent_standing(auth, remembered)
        caller = None if principal is None else Caller(principal, presented_credentials=True)
    else:
        caller = Caller(ANONYMOUS)
    if caller is None:
        return None
    allowed = _allowed_from_memory(context, caller, REPOSITORY, name, Action.PULL.value)
    return caller if allowed else None


async def _admit_api(
    request: Request, access: Access, caller: Caller, authorizer: Authorizer, auth: AuthServices
) -> None:
    """The REST API's rules: no credentials where they are needed is 401; a repository the
    caller may not read is not found (404), never "forbidden", so private names stay
    private; one it may read but not change is 403."""
    anonymous = caller.principal.is_anonymous

    def login_required() -> AuthenticationRequiredError:
        return AuthenticationRequiredError("authentication required", challenge_for(request, auth))

    if access is Access.API_LIST:
        return
    if access in (Access.API_CREATE, Access.API_SUPERUSER):
        if anonymous:
            raise login_required()
        if access is Access.API_SUPERUSER and not caller.principal.superuser:
            raise AccessDeniedError("only superusers may do this")
        return
    name = api_repository_name(request)
    if await _allows(request, caller, repository_scope(name, Action.PULL), authorizer):
        if access is Access.API_READ:
            return
        if await _allows(request, caller, repository_scope(name, _ACTIONS[access]), authorizer):
            return
        raise AccessDeniedError("you may read this repository but not change it")
    if anonymous and not caller.presented_credentials:
        raise login_required()
    raise RepositoryNotFoundError(f"no repository {name[:100]}")


async def _admit_web_seed(request: Request) -> None:
    """A web seed URL's signature is checked even while auth is off (an expired or changed
    URL never works); with auth on, the account it names must be allowed to pull now."""
    context = get_context(request)
    torrents = None if context.registry is None else context.registry.torrents
    if torrents is None:
        raise TorrentsDisabledError()
    name = request.path_params["name"]
    holder = await run_in_threadpool(
        torrents.signer.holder, name, request.path_params["digest"], request.query_params
    )
    auth, authorizer = context.auth, context.authorizer
    if auth is None or not auth.enabled or authorizer is None:
        request.scope[_CALLER] = Caller(OPEN_CALLER_PRINCIPAL, open=True)
        return
    caller = Caller(holder)
    request.scope[_CALLER] = caller
    scope = repository_scope(name, Action.PULL)
    if not await _allows(request, caller, scope, authorizer):
        await _refuse_disabled_namespace(request, scope)
        raise WebSeedRefusedError("the web seed URL's account may not pull this repository")


def api_repository_name(request: Request) -> str:
    """``namespace/repository`` of a REST API path."""
    params = request.path_params
    return f"{params['namespace']}/{params['repository']}"


async def _refuse_disabled_namespace(request: Request, scope: ResourceScope) -> None:
    """A disabled namespace is a refusal no token can fix: 403 DENIED, not a challenge."""
    registry = get_context(request).registry
    if scope.type != REPOSITORY or registry is None:
        return
    if await run_in_threadpool(registry.repositories.namespace_disabled, scope.name):
        raise AccessDeniedError("the namespace is disabled")


async def permits(request: Request, scope: ResourceScope) -> bool:
    """Whether the admitted caller may use ``scope`` too (a mount's source repository)."""
    context = get_context(request)
    caller = caller_of(request)
    if caller.open or context.authorizer is None:
        return True
    return await _allows(request, caller, scope, context.authorizer)


def mount_reader(request: Request) -> Principal | None:
    """Whose read permissions bound a mount without ``from``: the admitted caller's account
    as the database has it now (a token names only the target repository); None while
    auth is off (any repository)."""
    caller = caller_of(request)
    return None if caller.open else caller.principal


async def _authenticate(request: Request, auth: AuthServices) -> Caller:
    try:
        token = bearer_token(request)
        basic = None if token is not None else basic_credentials(request)
    except MalformedCredentialsError:
        raise AuthenticationRequiredError(
            "malformed credentials", challenge_for(request, auth, error="invalid_request")
        ) from None
    if token is not None:
        try:
            grant = auth.tokens.verify(token)
        except InvalidTokenError as refused:
            raise AuthenticationRequiredError(
                f"invalid token: {refused}", challenge_for(request, auth, error="invalid_token")
            ) from None
        # A disabled account's token grants nothing beyond what anonymous callers get.
        standing = await _standing(auth, grant.principal)
        if standing is None:
            return Caller(ANONYMOUS, presented_credentials=True)
        return Caller(standing, grant, presented_credentials=True)
    if basic is not None:
        username, password = basic
        # A password checked moments ago is answered here; a new one costs argon2, in a thread.
        principal = auth.logins.remembered(username, password)
        if principal is not None:
            principal = await _standing(auth, principal)
        else:
            client = client_address(request)
            principal = await run_in_threadpool(
                auth.logins.login, username, password, client=client
            )
        if principal is None:
            raise AuthenticationRequiredError(
                "wrong username or password", challenge_for(request, auth, error="invalid_token")
            )
        return Caller(principal, presented_credentials=True)
    return Caller(ANONYMOUS)


async def _standing(auth: AuthServices, principal: Principal) -> Principal | None:
    """``principal`` as its account stood within ``auth.account_check_s`` (on the event
    loop), else as it stands now (read in a thread); None if disabled or deleted."""
    recent = _recent_standing(auth, principal)
    if recent is not None:
        return recent
    assert auth.standing is not None  # without a standing check every principal stands
    return await run_in_threadpool(auth.standing.check, principal)


def _recent_standing(auth: AuthServices, principal: Principal) -> Principal | None:
    """``principal`` as its account stood within ``auth.account_check_s``; None when it
    was not checked that recently (or was found disabled). No I/O."""
    return principal if auth.standing is None else auth.standing.recent(principal)


def _needed_scope(request: Request, access: Access) -> ResourceScope | None:
    if access is Access.CATALOG:
        return CATALOG_SCOPE
    action = access.action
    if action is None:
        return None
    return repository_scope(request.path_params["name"], action)


def _challenge_scope(access: Access, scope: ResourceScope) -> ResourceScope:
    """What the challenge asks for: pushes ask ``pull,push``, as distribution does (Docker
    asks both anyway, and a push checks existence with pulls)."""
    if access in (Access.PUSH, Access.CREATE):
        return repository_scope(scope.name, Action.PULL, Action.PUSH)
    return scope


async def _allows(
    request: Request, caller: Caller, scope: ResourceScope, authorizer: Authorizer
) -> bool:
    (action,) = scope.actions
    context = get_context(request)
    decided = _allowed_from_memory(context, caller, scope.type, scope.name, action)
    if decided is not None:
        return decided
    permitted = await run_in_threadpool(authorizer.permitted, caller.principal, scope)
    recent = context.recent_pulls
    if recent is not None:
        recent.remember(caller.principal, scope.type, scope.name, permitted)
    return action in permitted or Action.ALL.value in permitted


def _allowed_from_memory(
    context: HttpContext, caller: Caller, scope_type: str, name: str, action: str
) -> bool | None:
    """What is decided without I/O: a token's grant, a superuser's repositories, or a pull
    allowed in the last few seconds (services/recent_pulls.py says what that bounds). None:
    the authorizer must be asked."""
    if caller.grant is not None:
        return caller.grant.allows(scope_type, name, action)
    if scope_type == REPOSITORY and caller.principal.superuser:
        return True
    recent = context.recent_pulls
    if recent is not None and recent.allowed(caller.principal, scope_type, name, action):
        return True
    return None
