"""The fast lane of ``POST /v1/decisions``: the call orchestrators make most, answered directly.

FastAPI's router, request object, dependency solving and exception layers cost about as much
per call as the decision itself. This ASGI middleware answers the common case without them: a
JSON body that validates as a ``DecisionRequest``, from a caller whose key may decide, for a
decision the engine takes without raising. It uses the same schema, key check, engine, JSON
and metrics as the route, so its answer is the route's answer byte for byte. Calls that arrive
together are decided together (:mod:`serving.micro_batch`), each as it would be alone.

Every other case (a wrong key, an invalid body, an unknown objective, an error) goes down the
full stack with the body replayed, where the route and the error handlers answer it as usual:
the lane never writes an error of its own. The route stays declared (and documented in the
OpenAPI spec) and is what answers when the lane steps aside.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from decisioning.decision import Decision
from serving.api.decisions import decide_one, decide_together, router
from serving.deps import Service
from serving.micro_batch import MicroBatcher
from serving.schemas import DecisionRequest, decision_json
from serving.security import HEADER, ORCHESTRATORS

PATH = router.prefix  # the route the lane stands in front of
_ROLES = frozenset(ORCHESTRATORS)
_KEY_HEADER = HEADER.lower().encode("latin-1")
_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})
#: the response headers Starlette's ``Response`` writes for a JSON body, bar its length
_CONTENT_TYPE = (b"content-type", b"application/json")


class DecisionLane:
    """ASGI middleware: ``POST /v1/decisions`` decided here when nothing about it is unusual."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._batched: tuple[Service, MicroBatcher] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _route_path(scope) != PATH:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        messages, body = await _read_body(receive)
        service: Service = scope["app"].state.service
        decision = None if body is None else await self._decide(service, scope["headers"], body)
        if decision is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        service.metrics.record([decision])
        content = decision_json(decision)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(content)).encode()), _CONTENT_TYPE],
            }
        )
        await send({"type": "http.response.body", "body": content})
        service.metrics.served("POST", PATH, 200, time.perf_counter() - start)

    async def _decide(
        self, service: Service, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Decision | None:
        """The logged decision, or None when the full stack should answer instead.

        Nothing is logged unless the decision is returned: every way of stepping aside happens
        before the engine logs, so the route, deciding again, logs the one decision.
        """
        call = _call(service, headers, body)
        return None if call is None else await self._batcher(service).decide(call)

    def _batcher(self, service: Service) -> MicroBatcher:
        held = self._batched
        if held is None or held[0] is not service:  # the app's service, set at start-up
            batcher = MicroBatcher(
                lambda calls: decide_together(service, calls),
                lambda call: decide_one(service, call),
                limit=service.settings.decisions_per_turn,
                observe=service.metrics.together.observe,
            )
            held = self._batched = (service, batcher)
        return held[1]


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _call(
    service: Service, headers: list[tuple[bytes, bytes]], body: bytes
) -> DecisionRequest | None:
    """The call to decide, or None when its key, type or body is for the full stack to judge."""
    key: bytes | None = None
    for name, value in headers:
        if name == b"content-type":
            if value.lower() not in _JSON_TYPES:
                return None  # the route knows which other types carry JSON
        elif name == _KEY_HEADER:
            key = value
    caller = service.api_keys.authenticate(None if key is None else key.decode("latin-1"))
    if caller is None or caller.role not in _ROLES:
        return None  # 401 or 403, from the route's dependency
    try:
        return DecisionRequest.model_validate(json.loads(body))
    except Exception:  # noqa: BLE001 - the route meets the same error and answers it
        return None


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request's messages as received, and its body (None when it did not arrive whole)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Callable[[], Awaitable[Any]]:
    """A ``receive`` giving ``messages`` again, then what the server sends next."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
