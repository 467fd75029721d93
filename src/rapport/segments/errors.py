"""``SegmentError``: the one error of the segment language, with a source position when there is one."""

from __future__ import annotations

from collections.abc import Sequence

from rapport.errors import ValidationFailed


class SegmentError(ValidationFailed):
    """A segment that cannot be parsed, checked, decoded or evaluated.

    Rendered by the API as 400 with ``details = {line, column, expected, suggestion, path}``; ``line`` and
    ``column`` are 1-based and ``None`` when the segment did not come from text (JSON, an evaluation).
    """

    code = "invalid_segment"

    def __init__(
        self,
        message: str,
        line: int | None = None,
        column: int | None = None,
        expected: Sequence[str] = (),
        suggestion: str | None = None,
        *,
        path: str | None = None,
    ) -> None:
        self.reason = message
        self.line = line
        self.column = column
        self.expected = list(expected)
        self.suggestion = suggestion
        self.path = path
        where = f"line {line}, column {column}: " if line is not None and column is not None else ""
        at = f"{path}: " if path else ""
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        super().__init__(
            f"{where}{at}{message}{hint}",
            details={
                "line": line,
                "column": column,
                "expected": self.expected,
                "suggestion": suggestion,
                "path": path,
            },
        )

    def at_path(self, path: str) -> SegmentError:
        """Return a copy of this error located at ``path`` inside a JSON document."""
        inner = f"{path}.{self.path}" if self.path else path
        return SegmentError(self.reason, self.line, self.column, self.expected, self.suggestion, path=inner)

    def render(self, text: str) -> str:
        """Return the message followed by the offending source line and a caret under the column."""
        if self.line is None or self.column is None:
            return self.message
        lines = text.splitlines() or [""]
        source = lines[self.line - 1] if 0 < self.line <= len(lines) else ""
        return f"{self.message}\n  {source}\n  {' ' * (self.column - 1)}^"
