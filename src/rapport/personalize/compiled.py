"""Templates compiled to Python: the common subset of Liquid rendered without walking python-liquid's tree.

python-liquid renders by calling every node and expression of the parse tree (a dozen Python calls per
``{{ profile.first_name }}``). For a template made only of text, ``{{ … | filters }}``, ``if``/``elsif``/
``else``, ``for`` (with ``break``/``continue``) and comments, ``compile_template`` turns python-liquid's own
parse tree into one Python function, once per template, that does the same with plain statements:

- a variable whose every step is a ``dict`` key present in the data (the usual case) is read directly;
  anything else (a missing key, a list index, ``size``/``first``/``last`` on a list, a drop, ``forloop``)
  is evaluated by python-liquid's own ``Path`` against the real render context, so it is the same value;
- filters are the engine's (already guarded) functions, called directly after the same time-budget check
  ``GuardedContext.filter`` makes; filters that want the context, and unknown ones, go through python-liquid;
- ``==``/``!=`` between plain strings and numbers compare directly, truthiness of plain values too;
  everything else (``contains``, ``<``, ranges, ``empty``) is python-liquid's expression object;
- loops run python-liquid's ``LoopExpression`` and ``ForLoop`` inside ``context.loop`` (the loop
  iteration limit and the per-iteration time budget of ``limits.py`` hold), with the namespace the tree
  walker would push, so fallbacks see the loop variables;
- output is counted in characters against the same output limit, blank blocks are suppressed as
  python-liquid suppresses them, and values are stringified by ``to_liquid_string`` (escaped in HTML).

A template using anything else (``assign``, ``capture``, ``case``, ``unless``, ``render``/``include``,
``cycle``, ``tablerow``, a ternary, ...) gets ``None`` and is rendered by python-liquid. The property tests
(``tests/personalize/test_compiled.py``) render random templates of the subset with random data both ways
and require the same text or the same failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from time import perf_counter
from typing import Any

from liquid import BoundTemplate, Environment, Markup, Mode, escape
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions import (
    BooleanExpression,
    FilteredExpression,
    KeywordArgument,
    Nil,
    Path,
    StringLiteral,
)
from liquid.builtin.expressions.logical import (
    EqExpression,
    LogicalAndExpression,
    LogicalNotExpression,
    LogicalOrExpression,
    NeExpression,
    _eq,
    is_truthy,
)
from liquid.builtin.expressions.loop import LoopExpression
from liquid.builtin.expressions.primitive import (
    FalseLiteral,
    FloatLiteral,
    IntegerLiteral,
    RangeLiteral,
    TrueLiteral,
)
from liquid.builtin.output import OutputNode
from liquid.builtin.tags.comment_tag import CommentNode
from liquid.builtin.tags.echo_tag import EchoNode
from liquid.builtin.tags.for_tag import BreakNode, ContinueNode, ForLoop, ForNode
from liquid.builtin.tags.if_tag import IfNode
from liquid.builtin.tags.inline_comment_tag import InlineCommentNode
from liquid.exceptions import (
    FilterArgumentError,
    LiquidError,
    LiquidTypeError,
    LiquidValueError,
    LoopIterationLimitError,
    OutputStreamLimitError,
)
from liquid.limits import to_int
from liquid.stringify import to_liquid_string

from rapport.personalize.limits import (
    GuardedContentNode,
    GuardedEchoNode,
    GuardedOutputNode,
    RenderBudget,
    ValueSizeLimitError,
)

#: ``render(data, limit, budget, make_context) -> text``: ``make_context()`` returns the render's
#: ``GuardedContext`` (made on first need only: a template whose every variable is found needs none).
FastRender = Callable[[Mapping[str, Any], int, RenderBudget, Callable[[], Any]], str]
#: How generated code reaches the render context, creating it the first time.
_CONTEXT = "(context if context is not None else (context := make_context()))"

log = logging.getLogger("rapport.personalize")
_MISSING = object()
_PLAIN = frozenset({str, int, float, dict, list, type(None), bool, Markup})
_EQ_PLAIN = frozenset({str, int, float, type(None), Markup})
#: maps in a fresh context's scope while a template renders: locals, globals, builtins, counters, partial
_BASE_SCOPE = 5
_OUTPUT_NODES = (OutputNode, EchoNode, GuardedOutputNode, GuardedEchoNode)


try:  # markupsafe's C escaping of a plain str, without wrapping the result in Markup (we join it)
    from markupsafe import _escape_inner as _escape_str
except ImportError:  # pragma: no cover
    _escape_str = escape


class Unsupported(Exception):
    """The template uses something outside the compiled subset."""


def _truthy(value: Any) -> bool:
    if type(value) in _PLAIN:
        return value is not False and value is not None
    return is_truthy(value)


def _equal(left: Any, right: Any) -> bool:
    if type(left) in _EQ_PLAIN and type(right) in _EQ_PLAIN:
        return bool(left == right)
    return _eq(left, right)


def _loop_limit() -> Exception:
    return LoopIterationLimitError("loop iteration limit reached", token=None)


def _to_int(value: object, token: Any) -> int:
    try:
        return to_int(value)
    except (ValueError, TypeError) as err:
        raise LiquidTypeError(f"expected an integer, found {value.__class__.__name__}", token=token) from err


def _loop_items(
    obj: object, limit: object, offset: object, expression: LoopExpression, string_sequences: bool
) -> tuple[Iterator[Any], int]:
    """``LoopExpression.evaluate`` once its iterable, limit and offset are evaluated (no ``continue``)."""
    if isinstance(obj, Mapping):
        it: Iterator[Any] = iter(obj.items())
        length = len(obj)
    elif isinstance(obj, range):
        try:
            it, length = iter(obj), len(obj)
        except OverflowError as err:
            raise LiquidValueError("range literal length limit reached", token=None) from err
    elif isinstance(obj, str) and not string_sequences:
        it, length = (iter([]), 0) if not obj else (iter([obj]), 1)
    elif isinstance(obj, Sequence):
        it, length = iter(obj), len(obj)
    else:
        it, length = iter([]), 0
    stop_limit = None if expression.limit is None else _to_int(limit, expression.limit.token)
    if expression.offset is None:
        start = 0
    elif isinstance(expression.offset, StringLiteral):
        start = int(_to_int(offset, expression.offset.token) or 0)
    else:
        start = int(_to_int(offset, expression.offset.token) or 0)
    stop = None if stop_limit is None else stop_limit + start
    start_ = min(max(start, 0), length)
    stop_ = min(stop or length, length)
    sliced = islice(it, start_, stop_)
    if expression.reversed:
        return reversed(list(sliced)), max(stop_ - start_, 0)
    return sliced, max(stop_ - start_, 0)


def _scoped(make_context: Callable[[], Any], namespaces: tuple[Any, ...], loops: tuple[Any, ...]) -> Any:
    """A fresh render context with the enclosing loops' namespaces and ``ForLoop``s, innermost last."""
    context = make_context()
    for namespace in namespaces:
        context.scope.push(namespace)
    context.loops.extend(loops)
    return context


def _output_limit() -> Exception:
    return OutputStreamLimitError("output stream limit reached", token=None)


class _Compiler:
    def __init__(self, env: Environment, shadowed: frozenset[str]) -> None:
        self.env = env
        self.autoescape = bool(env.autoescape)
        self.suppress_blank = bool(env.suppress_blank_control_flow_blocks)
        self.shadowed = shadowed
        self.names: dict[str, Any] = {
            "_truthy": _truthy,
            "_equal": _equal,
            "_clock": perf_counter,
            "_MISSING": _MISSING,
            "_LiquidTypeError": LiquidTypeError,
            "_LiquidError": LiquidError,
            "_FilterArgumentError": FilterArgumentError,
            "_output_limit": _output_limit,
            "_to_string": to_liquid_string,
            "_escape": _escape_str,
            "_ForLoop": ForLoop,
            "_Markup": Markup,
            "_ValueSizeLimitError": ValueSizeLimitError,
            "_loop_items": _loop_items,
            "_loop_limit": _loop_limit,
            "_scoped": _scoped,
        }
        self.lines: list[str] = []
        self.loops: list[tuple[str, str, str]] = []  # (identifier, namespace var, forloop var)
        self.counter = 0

    def const(self, value: Any) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    # -- expressions ------------------------------------------------------------------------------------

    def expr(self, node: Any) -> str:
        kind = type(node)
        if kind is Path:
            return self.path(node)
        if kind is StringLiteral:
            return self.const(Markup(node.value) if self.autoescape else node.value)
        if kind in (IntegerLiteral, FloatLiteral, TrueLiteral, FalseLiteral):
            return self.const(node.value)
        if kind is Nil:
            return "None"
        if kind is RangeLiteral:
            return f"{self.const(node)}._make_range({self.expr(node.start)}, {self.expr(node.stop)})"
        if kind is BooleanExpression:
            return f"_truthy({self.expr(node.expression)})"
        if kind is LogicalAndExpression:
            return f"(_truthy({self.expr(node.left)}) and _truthy({self.expr(node.right)}))"
        if kind is LogicalOrExpression:
            return f"(_truthy({self.expr(node.left)}) or _truthy({self.expr(node.right)}))"
        if kind is LogicalNotExpression:
            return f"(not _truthy({self.expr(node.right)}))"
        if kind is EqExpression:
            return f"_equal({self.expr(node.left)}, {self.expr(node.right)})"
        if kind is NeExpression:
            return f"(not _equal({self.expr(node.left)}, {self.expr(node.right)}))"
        # anything else: python-liquid's own expression, evaluated against the live context
        return f"{self.const(node)}.evaluate({self.ctx()})"

    def path(self, node: Path) -> str:
        segments = node.path
        root = segments[0]
        fallback = f"{self.const(node)}.evaluate({self.ctx()})"
        if not isinstance(root, str) or not all(type(s) is str for s in segments[1:]):
            return fallback
        source = "data"
        for identifier, namespace, forloop in reversed(self.loops):
            # get_item on a ForLoop reads ForLoop.__getitem__, which is getattr for these keys
            if root == "forloop" != identifier and len(segments) == 2 and segments[1] in ForLoop._keys:
                return f"{forloop}.{segments[1]}"
            if root in (identifier, "forloop"):
                source = namespace
                break
        else:
            if root in self.shadowed:
                return fallback
        # every step a dict key that is there: read it; else python-liquid's Path on the live context
        temp = self.fresh("_p")
        steps = [
            f"{source}.get({root!r}, _MISSING)",
            *(f"{temp}.get({key!r}, _MISSING)" for key in segments[1:]),
        ]
        tests = [f"type({temp} := {step}) is dict" for step in steps[:-1]]
        tests.append(f"({temp} := {steps[-1]}) is not _MISSING")
        return f"({temp} if {' and '.join(tests)} else {fallback})"

    def filtered(self, node: FilteredExpression, depth: int) -> str:
        """Emit the statements of a filtered value; return the variable holding it."""
        value = self.fresh("v")
        self.emit(depth, f"{value} = {self.expr(node.left)}")
        for filt in node.filters or ():
            func = self.env.filters.get(filt.name)
            if func is None:  # unknown: python-liquid raises (strict_filters) exactly as it would
                self.emit(depth, f"{value} = {self.const(filt)}.evaluate({value}, {self.ctx()})")
                continue
            # GuardedContext.filter: the time budget is checked before the arguments are evaluated
            self.emit(depth, "if _clock() > budget.wall_deadline:")
            self.emit(depth + 1, "budget.recheck()")
            args = []
            for arg in filt.args:
                temp = self.fresh("a")
                self.emit(depth, f"{temp} = {self.expr(arg.value)}")
                args.append(f"{arg.name}={temp}" if isinstance(arg, KeywordArgument) else temp)
            if getattr(func, "with_context", False):
                args.append(f"context={self.ctx()}")
            if getattr(func, "with_environment", False):
                args.append(f"environment={self.const(self.env)}")
            tail = "".join(f", {a}" for a in args)
            token = self.const(filt.token)
            self.emit(depth, "try:")
            raw = getattr(func, "guarded_filter", None)
            if raw is None:
                self.emit(depth + 1, f"{value} = {self.const(func)}({value}{tail})")
            else:
                # limits.guard_filter inline: a range (rare) goes through the guard itself
                _max_items, max_string = getattr(func, "guard_limits")  # noqa: B009
                positional = [value, *(a for a in args if "=" not in a)]
                ranges = " or ".join(f"type({a}) is range" for a in positional)
                self.emit(depth + 1, f"if {ranges}:")
                self.emit(depth + 2, f"{value} = {self.const(func)}({value}{tail})")
                self.emit(depth + 1, "else:")
                self.emit(depth + 2, f"{value} = {self.const(raw)}({value}{tail})")
                self.emit(depth + 2, f"if type({value}) is str and len({value}) > {int(max_string)}:")
                self.emit(depth + 3, "raise _ValueSizeLimitError('filter result too large', token=None)")
            self.emit(depth, "except TypeError as err:")
            self.emit(
                depth + 1, f"raise _LiquidTypeError(f{filt.name + ': {err}'!r}, token={token}) from err"
            )
            self.emit(depth, "except (_LiquidTypeError, _FilterArgumentError) as err:")
            self.emit(depth + 1, f"err.token = {token}")
            self.emit(depth + 1, "raise err")
        return value

    # -- nodes ------------------------------------------------------------------------------------------

    def block(self, nodes: list[Any], depth: int, *, blank: bool) -> None:
        start = len(self.lines)
        for node in nodes:
            self.node(node, depth, blank=blank)
        if len(self.lines) == start:
            self.emit(depth, "pass")

    def write(self, depth: int, text_var: str) -> None:
        self.emit(depth, f"size += len({text_var})")
        self.emit(depth, "if size > limit:")
        self.emit(depth + 1, "raise _output_limit()")
        self.emit(depth, f"write({text_var})")

    def node(self, node: Any, depth: int, *, blank: bool) -> None:
        kind = type(node)
        if kind is ContentNode or kind is GuardedContentNode:
            if not blank and node.text:
                self.write(depth, self.const(node.text))
            return
        if kind in _OUTPUT_NODES:
            expression = node.expression
            if type(expression) is not FilteredExpression:
                raise Unsupported(type(expression).__name__)
            value = self.filtered(expression, depth)
            text = self.fresh("s")
            # to_liquid_string, with its usual cases first: a str (escaped in HTML), Markup (already safe:
            # escape() gives it back), an int or a float (digits, sign, "." and "e": nothing to escape)
            kind_var = self.fresh("t")
            self.emit(depth, f"{kind_var} = type({value})")
            self.emit(depth, f"if {kind_var} is str:")
            self.emit(depth + 1, f"{text} = _escape({value})" if self.autoescape else f"{text} = {value}")
            self.emit(depth, f"elif {kind_var} is _Markup:")
            self.emit(depth + 1, f"{text} = {value}")
            self.emit(depth, f"elif {kind_var} is int or {kind_var} is float:")
            self.emit(depth + 1, f"{text} = str({value})")
            self.emit(depth, "else:")
            self.emit(depth + 1, f"{text} = _to_string({value}, {self.autoescape})")
            if blank:  # never: an output makes its block non-blank; kept exact all the same
                return
            self.write(depth, text)
            return
        if kind in (CommentNode, InlineCommentNode):
            return
        if kind is IfNode:
            self.if_node(node, depth, blank=blank)
            return
        if kind is ForNode:
            self.for_node(node, depth, blank=blank)
            return
        if kind is BreakNode or kind is ContinueNode:
            if not self.loops:
                raise Unsupported("break/continue outside a loop")
            self.emit(depth, "break" if kind is BreakNode else "continue")
            return
        raise Unsupported(kind.__name__)

    def _is_blank(self, block: Any, blank: bool) -> bool:
        return blank or (self.suppress_blank and bool(block.blank))

    def if_node(self, node: IfNode, depth: int, *, blank: bool) -> None:
        self.emit(depth, f"if {self.expr(node.condition)}:")
        self.block(node.consequence.nodes, depth + 1, blank=self._is_blank(node.consequence, blank))
        for alternative in node.alternatives:
            if type(alternative).__name__ != "ConditionalBlockNode":
                raise Unsupported(type(alternative).__name__)
            self.emit(depth, f"elif {self.expr(alternative.expression)}:")
            self.block(alternative.block.nodes, depth + 1, blank=self._is_blank(alternative.block, blank))
        if node.default is not None:
            self.emit(depth, "else:")
            self.block(node.default.nodes, depth + 1, blank=self._is_blank(node.default, blank))

    def ctx(self) -> str:
        """The expression giving the render context, as python-liquid would have it here."""
        if not self.loops:
            return "(context if context is not None else (context := make_context()))"
        # inside loops: a context with the loops' namespaces pushed, made on first need once per entry
        # into the innermost loop (its namespace dict is updated in place on every iteration); a fresh
        # context is the same as the tree walker's because the subset keeps no state in the context:
        # no assign, counters, cycles or ``offset: continue``
        namespaces = "".join(f"{ns}, " for _i, ns, _f in self.loops)
        forloops = "".join(f"{fl}, " for _i, _n, fl in self.loops)
        cached = f"c_{self.loops[-1][1]}"
        scoped = f"_scoped(make_context, ({namespaces}), ({forloops}))"
        return f"({cached} if {cached} is not None else ({cached} := {scoped}))"

    def for_node(self, node: ForNode, depth: int, *, blank: bool) -> None:
        expression = node.expression
        if type(expression) is not LoopExpression or expression.cols is not None:
            raise Unsupported("loop expression")
        if isinstance(expression.offset, StringLiteral) and expression.offset.value == "continue":
            raise Unsupported("offset: continue")  # reads state earlier loops left in the context
        # RenderContext.extend refuses to push a namespace past the context depth limit
        if _BASE_SCOPE + len(self.loops) > self.env.context_depth_limit:
            raise Unsupported("loops nested too deeply")
        identifier = str(expression.identifier)
        items, length = self.fresh("it"), self.fresh("n")
        forloop, namespace, item = self.fresh("fl"), self.fresh("ns"), self.fresh("x")
        limit = self.expr(expression.limit) if expression.limit else "None"
        if expression.offset is None:
            offset = "None"
        elif isinstance(expression.offset, StringLiteral):
            offset = self.const(expression.offset.value)
        else:
            offset = self.expr(expression.offset)
        self.emit(
            depth,
            f"{items}, {length} = _loop_items({self.expr(expression.iterable)}, {limit}, {offset}, "
            f"{self.const(expression)}, {self.const(bool(self.env.string_sequences))})",
        )
        self.emit(depth, f"if {length}:")
        name = self.const(f"{identifier}-{expression.iterable}")
        parent = (
            self.loops[-1][2] if self.loops else f"{self.const(self.env)}.undefined('parentloop', token=None)"
        )
        self.emit(
            depth + 1, f"{forloop} = _ForLoop(name={name}, it={items}, length={length}, parentloop={parent})"
        )
        self.emit(depth + 1, f"{namespace} = {{'forloop': {forloop}, {identifier!r}: None}}")
        self.emit(depth + 1, f"c_{namespace} = None")
        # GuardedContext.loop: the time budget, then RenderContext.loop: the iteration limit
        self.emit(depth + 1, "budget.check()")
        iteration_limit = self.env.loop_iteration_limit
        if iteration_limit:
            product = " * ".join([length, *(f"{fl}.length" for _i, _n, fl in self.loops)])
            self.emit(depth + 1, f"if {product} > {int(iteration_limit)}:")
            self.emit(depth + 2, "raise _loop_limit()")
        self.emit(depth + 1, f"for {item} in {forloop}:")
        self.emit(depth + 2, "if _clock() > budget.wall_deadline:")
        self.emit(depth + 3, "budget.recheck()")
        self.emit(depth + 2, f"{namespace}[{identifier!r}] = {item}")
        self.loops.append((identifier, namespace, forloop))
        try:
            self.block(node.block.nodes, depth + 2, blank=self._is_blank(node.block, blank))
        finally:
            self.loops.pop()
        if node.default is not None:
            self.emit(depth, "else:")
            self.block(node.default.nodes, depth + 1, blank=self._is_blank(node.default, blank))


def compile_template(bound: BoundTemplate) -> FastRender | None:
    """Return a Python function rendering ``bound`` as python-liquid would, or None outside the subset."""
    if bound.env.mode != Mode.STRICT:
        return None  # other modes carry on after an error: only the tree walker does that
    partial = bound.make_partial_namespace(False, {})
    compiler = _Compiler(bound.env, frozenset(partial))
    try:
        for node in bound.nodes:
            # render_with_context gives an error without a position the top-level node's (env.error)
            compiler.emit(1, "try:")
            compiler.block([node], 2, blank=False)
            compiler.emit(1, "except _LiquidError as err:")
            compiler.emit(2, "if not err.token:")
            compiler.emit(3, f"err.token = {compiler.const(node.token)}")
            compiler.emit(2, "raise")
    except Unsupported:
        return None
    except Exception:  # a bug here must not fail templates: python-liquid renders them
        log.exception("could not compile a template; rendering it with python-liquid")
        return None
    source = "\n".join(
        [
            "def render(data, limit, budget, make_context):",
            "    context = None",
            "    out = []",
            "    write = out.append",
            "    size = 0",
            *compiler.lines,
            "    return ''.join(out)",
        ]
    )
    names = dict(compiler.names)
    try:
        code = compile(source, f"<liquid {bound.name or 'template'}>", "exec")
        exec(code, names)  # noqa: S102 (our own generated code, built from a parse tree, no user text)
    except Exception:  # pragma: no cover (a bug in the generator): python-liquid renders it
        log.exception("could not compile a template; rendering it with python-liquid")
        return None
    render: FastRender = names["render"]
    return render
