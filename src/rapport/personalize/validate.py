"""Validation on save: syntax errors with line and column, unknown filters and snippets, unknown variables.

    report = validate_template(engine, source, known=known_variable_paths(traits=workspace_traits))
    report.ok            # False when there is an error (the template would fail every render)
    report.errors        # [TemplateIssue(code="syntax_error", line=3, column=14, message=...)]
    report.warnings      # [TemplateIssue(code="unknown_variable", ..., suggestion="first_name")]

Lines and columns are 1-based. Unknown variables are warnings, not errors: they render as empty, and
``| default`` may be covering them on purpose.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from liquid import Environment
from liquid.exceptions import LiquidError
from liquid.span import Span
from liquid.static_analysis import Segments
from liquid.token import TOKEN_EXPRESSION, TOKEN_OUTPUT, TOKEN_TAG

from rapport.personalize.context import KNOWN_VARIABLES
from rapport.personalize.engine import RenderFailed, TemplateEngine, error_position

_BLOCK_TAGS = frozenset({"if", "unless", "for", "case", "capture", "tablerow", "ifchanged", "comment", "raw"})
_INNER_TAGS = {
    "elsif": ("{% if true %}", "{% endif %}"),
    "when": ("{% case x %}", "{% endcase %}"),
    "else": ("{% if true %}", "{% endif %}"),
    "break": ("{% for x in y %}", "{% endfor %}"),
    "continue": ("{% for x in y %}", "{% endfor %}"),
}
_SNIPPET_REF = re.compile(r"(?:\{%-?|\n)\s*(?:render|include)\s+(['\"])(?P<name>[^'\"]+)\1")
# Properties every value has in Liquid, so ``first_name.size`` is not an unknown variable.
_BUILTIN_PROPERTIES = frozenset({"size", "first", "last"})


@dataclass(frozen=True, slots=True)
class TemplateIssue:
    """One problem found in a template; ``line``/``column`` are 1-based when known."""

    severity: str
    code: str
    message: str
    line: int | None = None
    column: int | None = None
    suggestion: str | None = None


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The errors (the template cannot be used) and warnings (it can, but look) of one template."""

    errors: tuple[TemplateIssue, ...]
    warnings: tuple[TemplateIssue, ...]

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors


def line_col(source: str, index: int) -> tuple[int, int]:
    """Return the 1-based (line, column) of character ``index`` in ``source``."""
    index = max(0, min(index, len(source)))
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return line, column


def _span_position(source: str, span: Span) -> tuple[int, int]:
    return line_col(source, span.index)


def _tokens(env: Environment, source: str) -> list[tuple[str, str, int]]:
    try:
        return [(tok.kind, tok.value, tok.start_index) for tok in env.tokenizer()(source)]
    except LiquidError:
        return []


def _unclosed_block(tokens: list[tuple[str, str, int]]) -> tuple[str, int] | None:
    stack: list[tuple[str, int]] = []
    for kind, value, index in tokens:
        if kind != TOKEN_TAG:
            continue
        if value in _BLOCK_TAGS:
            stack.append((value, index))
        elif value.startswith("end") and stack and stack[-1][0] == value[3:]:
            stack.pop()
    return stack[-1] if stack else None


def _failing_markup(env: Environment, tokens: list[tuple[str, str, int]]) -> int | None:
    """Parse each output and tag on its own; return where the first one that fails starts."""
    for position, (kind, value, index) in enumerate(tokens):
        if kind == TOKEN_OUTPUT:
            probe = value
        elif kind == TOKEN_TAG:
            following = tokens[position + 1] if position + 1 < len(tokens) else None
            expression = following[1] if following and following[0] == TOKEN_EXPRESSION else ""
            markup = f"{{% {value} {expression} %}}"
            if value in _INNER_TAGS:
                opener, closer = _INNER_TAGS[value]
                probe = f"{opener}{markup}{closer}"
            elif value in _BLOCK_TAGS:
                probe = f"{markup}{{% end{value} %}}"
            else:
                probe = markup
        else:
            continue
        try:
            env.from_string(probe)
        except LiquidError:
            return index
        except Exception:  # a probe that breaks the parser some other way still locates the error
            return index
    return None


def locate_syntax_error(
    env: Environment, source: str, err: BaseException
) -> tuple[int | None, int | None, str]:
    """Return the 1-based (line, column) and a message for a syntax error, also when python-liquid
    gives no position."""
    message = str(getattr(err, "message", err))
    line, column = error_position(err)
    if line is not None:
        return line, column, message
    tokens = _tokens(env, source)
    unclosed = _unclosed_block(tokens) if "expected tag end" in message else None
    if unclosed is not None:
        tag, opened_at = unclosed
        return (*line_col(source, opened_at), f"'{tag}' is never closed: add {{% end{tag} %}}")
    failing_at = _failing_markup(env, tokens)
    if failing_at is None:
        return None, None, message
    return (*line_col(source, failing_at), message)


class _KnownPaths:
    def __init__(self, known: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.open: set[str] = set()
        for path in known:
            if path.endswith(".*"):
                self.open.add(path[:-2])
            else:
                self.exact.add(path)
        self.ancestors = {
            ".".join(parts[:i])
            for path in self.exact | self.open
            for parts in [path.split(".")]
            for i in range(1, len(parts))
        }
        self.candidates = sorted(self.exact | {f"{path}.*" for path in self.open})

    def knows(self, parts: list[str]) -> bool:
        path = ".".join(parts)
        if path in self.exact or path in self.ancestors or path in self.open:
            return True
        for i in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:i])
            if prefix in self.open:
                return True
            if prefix in self.exact:
                return all(part in _BUILTIN_PROPERTIES for part in parts[i:])
        return False

    def suggest(self, parts: list[str]) -> str | None:
        path = ".".join(parts)
        pool = [c[:-2] if c.endswith(".*") else c for c in self.candidates]
        match = difflib.get_close_matches(path, pool, n=1, cutoff=0.6)
        if match:
            return match[0]
        root = difflib.get_close_matches(parts[0], sorted({c.split(".")[0] for c in pool}), n=1, cutoff=0.6)
        return ".".join([root[0], *parts[1:]]) if root else None


def _named_parts(segments: Segments) -> list[str]:
    parts: list[str] = []
    for segment in segments:
        if not isinstance(segment, str):
            break
        parts.append(segment)
    return parts


def validate_template(
    engine: TemplateEngine,
    source: str,
    *,
    known: Iterable[str] = KNOWN_VARIABLES,
    snippets: Mapping[str, str] | None = None,
) -> ValidationReport:
    """Check ``source`` as a marketer saves it; see the module docstring for what is reported."""
    env = Environment()
    try:
        compiled = engine.compile(source)
    except RenderFailed as failure:
        cause = failure.__cause__ or failure
        message = failure.message
        if failure.reason == "syntax_error":
            line, column, message = locate_syntax_error(env, source, cause)
        else:
            line, column = failure.line, failure.column
        issue = TemplateIssue("error", failure.reason, message, line, column)
        return ValidationReport(errors=(issue,), warnings=())

    analysis = compiled.bound.analyze(include_partials=False)
    errors: list[TemplateIssue] = []
    warnings: list[TemplateIssue] = []

    filter_names = engine.filter_names
    for name, spans in analysis.filters.items():
        if name not in filter_names:
            line, column = _span_position(source, spans[0])
            match = difflib.get_close_matches(name, sorted(filter_names), n=1, cutoff=0.6)
            errors.append(
                TemplateIssue(
                    "error",
                    "unknown_filter",
                    f"unknown filter '{name}'",
                    line,
                    column,
                    match[0] if match else None,
                )
            )

    available = engine.snippets if snippets is None else snippets
    for ref in _SNIPPET_REF.finditer(source):
        name = ref.group("name")
        if name not in available:
            line, column = line_col(source, ref.start("name") - 1)
            match = difflib.get_close_matches(name, sorted(available), n=1, cutoff=0.6)
            errors.append(
                TemplateIssue(
                    "error",
                    "snippet_not_found",
                    f"no snippet named '{name}'",
                    line,
                    column,
                    match[0] if match else None,
                )
            )

    paths = _KnownPaths(known)
    reported: set[str] = set()
    for variables in analysis.globals.values():
        for variable in variables:
            parts = _named_parts(variable.segments)
            dotted = ".".join(parts)
            if not parts or dotted in reported or paths.knows(parts):
                continue
            reported.add(dotted)
            line, column = _span_position(source, variable.span)
            suggestion = paths.suggest(parts)
            hint = f"; did you mean '{suggestion}'?" if suggestion else ""
            warnings.append(
                TemplateIssue(
                    "warning",
                    "unknown_variable",
                    f"unknown variable '{dotted}'{hint}",
                    line,
                    column,
                    suggestion,
                )
            )

    errors.sort(key=lambda issue: (issue.line or 0, issue.column or 0))
    warnings.sort(key=lambda issue: (issue.line or 0, issue.column or 0))
    return ValidationReport(errors=tuple(errors), warnings=tuple(warnings))
