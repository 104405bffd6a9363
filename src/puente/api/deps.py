"""Request dependencies for the REST API: the unit of work and the calling token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from puente.accounts.models import ApiToken
from puente.accounts.tokens import access_token, has_scope
from puente.errors import Forbidden, NotAuthenticated
from puente.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="An API token from `puente tokens create`.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed when the handler returns without error."""
    with get_runtime(request).db.unit_of_work() as session:
        yield session


@dataclass(frozen=True)
class ApiCaller:
    token: ApiToken

    @property
    def workspace_id(self) -> int:
        return self.token.workspace_id

    def require(self, scope: str) -> None:
        if not has_scope(self.token, scope):
            raise Forbidden(f"this token lacks the '{scope}' scope", code="missing_scope")


def get_caller(
    session: Annotated[Session, Depends(get_session, scope="function")],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiCaller:
    if credentials is None:
        raise NotAuthenticated("send an API token as 'Authorization: Bearer <token>'")
    token = access_token(session, credentials.credentials)
    if token is None:
        raise NotAuthenticated("this API token is unknown or revoked", code="invalid_token")
    return ApiCaller(token)


# scope="function": the transaction commits before the response leaves, so a client's
# next request always sees what this one wrote.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
CallerDep = Annotated[ApiCaller, Depends(get_caller)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def scoped(scope: str) -> object:
    """A dependency that admits only tokens carrying `scope`."""

    def check(caller: CallerDep) -> ApiCaller:
        caller.require(scope)
        return caller

    return Depends(check)
