"""The API's routers, one per resource, all versioned under ``/v1`` (health endpoints aside)."""

from fastapi import APIRouter

from serving.api import (
    contacts,
    decisions,
    events,
    health,
    models,
    objectives,
    previews,
    reports,
)

ROUTERS: tuple[APIRouter, ...] = (
    decisions.router,  # first: the route orchestrators call most is matched first
    previews.router,  # before objectives: /preview is no objective id
    objectives.router,
    reports.router,
    events.router,
    contacts.router,
    models.router,
    health.router,
)

__all__ = ["ROUTERS"]
