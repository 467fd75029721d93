"""The application's API operations, read from its OpenAPI document (stable across FastAPI versions)."""

from __future__ import annotations

from fastapi import FastAPI

_METHODS = {"get", "post", "put", "patch", "delete"}


def api_operations(app: FastAPI, *, prefix: str = "/") -> list[tuple[str, str]]:
    """Return (METHOD, path template) of every documented operation whose path starts with ``prefix``."""
    app.openapi_schema = None
    spec = app.openapi()
    out = []
    for path, item in spec["paths"].items():
        if path.startswith(prefix):
            out.extend((method.upper(), path) for method in item if method in _METHODS)
    return sorted(out)


def fill_path(path: str, value: str = "1") -> str:
    """Replace every ``{param}`` of a path template with ``value``."""
    while "{" in path:
        start = path.index("{")
        end = path.index("}", start)
        path = path[:start] + value + path[end + 1 :]
    return path
