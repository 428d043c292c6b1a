"""Prometheus metrics of one app: requests per route, latency, decisions by action and objective.

Every app gets its own ``CollectorRegistry``, so several apps (tests, workers in one process)
never clash over metric names. Requests are labelled by route template (``/v1/objectives/{id}``)
rather than raw path, so ids do not explode the label space.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from decisioning.decision import Decision

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The app's collectors, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "decisioning_http_requests",
            "HTTP requests by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "decisioning_http_request_seconds",
            "HTTP request latency by method and route template (streams: until the last byte)",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "decisioning_decisions",
            "Decisions served, by objective and action",
            ["objective", "action"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "decisioning_fallback_decisions",
            "Decisions taken by the rule-based fallback instead of a trained model",
            ["objective"],
            registry=self.registry,
        )
        self.together = Histogram(
            "decisioning_decisions_per_turn",
            "Calls to POST /v1/decisions decided together in one turn of the event loop",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.holdouts = Counter(
            "decisioning_holdout_decisions",
            "Decisions for customers in an objective's holdout",
            ["objective"],
            registry=self.registry,
        )

    def record(self, decisions: Iterable[Decision]) -> None:
        """Count served decisions."""
        made: collections.Counter[tuple[str, str]] = collections.Counter()
        fallbacks: collections.Counter[str] = collections.Counter()
        holdouts: collections.Counter[str] = collections.Counter()
        for decision in decisions:
            objective = decision.objective_id or "none"
            made[objective, decision.action.key] += 1
            if decision.fallback:
                fallbacks[objective] += 1
            if decision.holdout:
                holdouts[objective] += 1
        # one increment per label set: a batch's chunk holds a few of them
        for (objective, action), count in made.items():
            self.decisions.labels(objective, action).inc(count)
        for objective, count in fallbacks.items():
            self.fallbacks.labels(objective).inc(count)
        for objective, count in holdouts.items():
            self.holdouts.labels(objective).inc(count)

    def served(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request by route template and status, and time it."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware timing each HTTP request and counting it by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        code = 500  # an exception before the response started ends as a server error

        async def send_wrapper(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.served(method, template, code, time.perf_counter() - start)
