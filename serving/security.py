"""API keys with roles: who may call what.

Keys come from the settings (``DECISIONING_API_KEYS="marketer:k1,orchestrator:k2"``), are
hashed with SHA-256 at start-up and compared in constant time; the clear keys are not kept.
A request carries its key in the ``X-API-Key`` header: without a valid key it gets 401, with a
key whose role may not call the endpoint 403.

Without any key configured the service runs open (every caller is ``admin``): meant for local
development only, and logged as a warning at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from decisioning.errors import InvalidInput

logger = logging.getLogger("decisioning.serving")
HEADER = "X-API-Key"


class Role(StrEnum):
    """What a caller is: each endpoint lists the roles it serves."""

    MARKETER = "marketer"
    ORCHESTRATOR = "orchestrator"
    DATA_SCIENTIST = "data_scientist"
    ADMIN = "admin"


#: who may call what (``admin`` may call everything)
OBJECTIVE_READERS = (Role.MARKETER, Role.DATA_SCIENTIST, Role.ORCHESTRATOR, Role.ADMIN)
OBJECTIVE_WRITERS = (Role.MARKETER, Role.ADMIN)
REPORT_READERS = (Role.MARKETER, Role.ADMIN)
ORCHESTRATORS = (Role.ORCHESTRATOR, Role.ADMIN)
MODEL_READERS = (Role.DATA_SCIENTIST, Role.MARKETER, Role.ADMIN)
MODEL_WRITERS = (Role.DATA_SCIENTIST, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: its role, and a short fingerprint of its key for the logs."""

    role: Role
    key_id: str


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    """The configured keys, hashed; authenticates a presented key in constant time per key."""

    def __init__(self, pairs: Iterable[tuple[Role, str]]) -> None:
        self._keys: list[tuple[bytes, Role]] = [(_digest(key), role) for role, key in pairs]

    @classmethod
    def parse(cls, spec: str) -> ApiKeys:
        """Keys from ``"role:key,role:key"``; raises ``InvalidInput`` naming a bad entry."""
        pairs: list[tuple[Role, str]] = []
        seen: dict[str, Role] = {}
        for i, entry in enumerate(spec.split(","), start=1):
            entry = entry.strip()
            if not entry:
                continue
            role_name, sep, key = entry.partition(":")
            role_name, key = role_name.strip(), key.strip()
            if not sep or not key:
                raise InvalidInput(f"api_keys entry {i}: expected 'role:key'")
            try:
                role = Role(role_name)
            except ValueError:
                known = ", ".join(r.value for r in Role)
                raise InvalidInput(
                    f"api_keys entry {i}: unknown role {role_name!r} (roles: {known})"
                ) from None
            if key in seen and seen[key] is not role:
                raise InvalidInput(f"api_keys entry {i}: the same key is given two roles")
            seen[key] = role
            pairs.append((role, key))
        return cls(pairs)

    @property
    def open(self) -> bool:
        """Whether no key is configured (development mode: everyone is admin)."""
        return not self._keys

    def authenticate(self, presented: str | None) -> Caller | None:
        """The caller a presented key belongs to, or None."""
        if self.open:
            return Caller(Role.ADMIN, "open")
        if not presented:
            return None
        digest = _digest(presented)
        found: Role | None = None
        for stored, role in self._keys:  # no early exit: the time does not depend on the match
            if hmac.compare_digest(stored, digest):
                found = role
        return None if found is None else Caller(found, digest.hex()[:8])


api_key_header = APIKeyHeader(name=HEADER, auto_error=False, description="API key of the caller")


def allow(*roles: Role) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting callers of ``roles``: 401 without a valid key, 403 otherwise."""
    allowed = frozenset(roles)
    names = ", ".join(r.value for r in roles)

    async def dependency(  # a coroutine: no thread-pool hop to check a key
        request: Request, key: Annotated[str | None, Security(api_key_header)]
    ) -> Caller:
        keys: ApiKeys = request.app.state.service.api_keys
        caller = keys.authenticate(key)
        if caller is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=f"a valid API key is required in the {HEADER} header",
                headers={"WWW-Authenticate": HEADER},
            )
        if caller.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {caller.role.value!r} may not call this endpoint (allowed: {names})",
            )
        request.state.caller = caller
        return caller

    dependency.__name__ = f"allow_{'_'.join(r.value for r in roles)}"
    return dependency


def warn_if_open(keys: ApiKeys) -> None:
    """Log loudly that the service runs without authentication."""
    if keys.open:
        logger.warning(
            "no API keys configured (DECISIONING_API_KEYS): the service runs OPEN, every "
            "caller is admin; set keys before exposing it"
        )
