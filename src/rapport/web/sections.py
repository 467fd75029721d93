"""Pages of sections whose features arrive with later work: each shows an honest empty state.

When a domain ships its own pages (``rapport/<domain>/web.py`` with ``route_class=UiRoute``), drop its
entry from :data:`PLACEHOLDERS` and include its router in :func:`rapport.web.mount.mount`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from rapport.web.rendering import render
from rapport.web.session import UiPage, UiRoute, UiUser


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A section that exists in the navigation but has no features yet."""

    path: str
    title: str
    headline: str
    text: str


PLACEHOLDERS: tuple[Placeholder, ...] = ()


def build_router(placeholders: tuple[Placeholder, ...] = PLACEHOLDERS) -> APIRouter:
    """Return a router with one empty-state page per placeholder."""
    router = APIRouter(route_class=UiRoute, include_in_schema=False)
    for item in placeholders:
        router.add_api_route(
            item.path, _page_for(item), methods=["GET"], name=f"ui{item.path.replace('/', '_')}"
        )
    return router


def _page_for(item: Placeholder) -> Callable[[Request, UiUser], Response]:
    def page(request: Request, ui: UiPage) -> Response:
        return render(request, "placeholder.html", {"title": item.title, "section": item})

    page.__doc__ = f"The {item.title} section (empty until its feature lands)."
    return page
