"""The marketer UI: server-rendered pages (Jinja2 + htmx), vendored static files."""
