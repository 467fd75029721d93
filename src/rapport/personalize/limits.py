"""Resource limits for marketer-written templates (R22) and the sandboxed Liquid classes that enforce them.

python-liquid already caps loop iterations (the product of nested loop lengths, checked when a loop
starts), output size, context depth and local namespace size. It has no clock, and a few cheap
expressions escape its loop limit (a range literal fed to a filter: ``{{ (1..100000000) | join }}``).
``GuardedContext`` adds what is missing, cooperatively and without threads or signals:

- a time budget (``RenderBudget``), checked on every loop iteration (the loop's iterator is wrapped, so
  a loop whose body writes nothing is still caught), every filter call and every ``render`` of a snippet;
- a filter may not receive a range longer than the loop limit, nor return a string longer than the
  output limit.
- the output cap is counted in characters by ``OutputBuffer``; content and ``{{ }}`` nodes check it
  inline (``GuardedContentNode``/``GuardedOutputNode``), every other writer through ``write``.

The budget counts the CPU time of the rendering thread, not wall-clock time: on a busy worker a cheap
template can wait 200 ms for the CPU, and failing it would punish a good message for the machine's
load. Reading the thread's CPU time is a system call (``thread_cpu_seconds``), so the hot path compares a
wall-clock deadline (cheap) and only when that passes consults the CPU time, pushing the wall deadline out
by the CPU budget left.
A hard wall-clock cap (``hard_factor`` × the budget) still bounds the latency of any one render.

A limit that trips raises a ``liquid`` ``ResourceLimitError``; the engine turns it into ``RenderFailed``.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from time import perf_counter, thread_time
from typing import TYPE_CHECKING, Any, TextIO

from liquid import Environment, RenderContext
from liquid.builtin.content import ContentNode
from liquid.builtin.output import OutputNode
from liquid.builtin.tags.echo_tag import EchoNode
from liquid.exceptions import OutputStreamLimitError, ResourceLimitError
from liquid.stringify import to_liquid_string
from liquid.template import BoundTemplate
from liquid.token import TOKEN_CONTENT, TOKEN_OUTPUT

if TYPE_CHECKING:
    from liquid.builtin.tags.for_tag import ForLoop
    from liquid.builtin.tags.tablerow_tag import TableRow
    from liquid.token import Token


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Caps applied to every render; the defaults suit a marketing email."""

    max_render_ms: float = 200.0
    hard_factor: float = 5.0
    max_loop_iterations: int = 10_000
    max_output_chars: int = 512_000
    max_context_depth: int = 30
    max_source_bytes: int = 100_000
    max_local_bytes: int = 1_000_000
    max_block_nesting: int = 30


class RenderTimeLimitError(ResourceLimitError):
    """The render spent its CPU budget: the template is too costly."""


class RenderStalledError(RenderTimeLimitError):
    """The render hit the hard wall-clock cap with CPU budget left: the machine was too busy to run it (the
    thread waited for the CPU or the interpreter lock), not a costly template. Worth trying again."""


class ValueSizeLimitError(ResourceLimitError):
    """A filter was given or produced a value larger than the limits allow."""


_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", None)


def thread_cpu_seconds() -> float:
    """Return this thread's CPU time in seconds.

    ``getrusage(RUSAGE_THREAD)`` where Linux has it: ``time.thread_time()`` (``clock_gettime`` of the
    thread CPU clock) is a slow system call on a loaded virtual machine — measured 13 µs against 0.5 µs,
    as much as rendering a subject line — and a budget reads the clock once per message.
    """
    if _RUSAGE_THREAD is None:
        return thread_time()
    usage = resource.getrusage(_RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


class RenderBudget:
    """The time one render (or several parts sharing a budget) may spend; see the module docstring."""

    __slots__ = ("cpu_deadline", "hard_deadline", "wall_deadline")

    def __init__(self, seconds: float, *, hard_factor: float = 5.0) -> None:
        now = perf_counter()
        self.wall_deadline = now + seconds
        self.hard_deadline = now + seconds * hard_factor
        self.cpu_deadline = thread_cpu_seconds() + seconds

    @classmethod
    def unlimited(cls) -> RenderBudget:
        """A budget that never runs out (for contexts created outside the engine)."""
        return cls(float("inf"))

    def credit(self, seconds: float) -> None:
        """Give back ``seconds`` spent on one-off work that is not the template's (loading locale data)."""
        self.cpu_deadline += seconds
        self.wall_deadline += seconds
        self.hard_deadline += seconds

    def check(self) -> None:
        """Raise ``RenderTimeLimitError`` once the budget is spent."""
        if perf_counter() > self.wall_deadline:
            self.recheck()

    def recheck(self) -> None:
        """Consult the CPU clock; raise if the budget is spent, else move the wall deadline out."""
        now = perf_counter()
        cpu_left = self.cpu_deadline - thread_cpu_seconds()
        if cpu_left <= 0:
            raise RenderTimeLimitError("render time limit reached", token=None)
        if now >= self.hard_deadline:
            raise RenderStalledError(
                "render stalled: the worker was too busy to finish it in time", token=None
            )
        self.wall_deadline = min(now + cpu_left, self.hard_deadline)


def _budgeted(items: Iterator[Any], budget: RenderBudget) -> Iterator[Any]:
    for item in items:
        if perf_counter() > budget.wall_deadline:
            budget.recheck()
        yield item


_RAW_WRITE = StringIO.write


def _output_limit() -> OutputStreamLimitError:
    return OutputStreamLimitError("output stream limit reached", token=None)


class OutputBuffer(StringIO):
    """The output stream, capped in characters (counting bytes would mean encoding every write).

    Content and output nodes, which do nearly all the writing, check the room inline and call
    ``StringIO.write`` directly: an overridden ``write`` costs a Python call per node (~10% of a render).
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, text: str) -> int:
        """Append ``text`` unless the output would pass its limit."""
        if self.tell() + len(text) > self.limit:
            raise _output_limit()
        return _RAW_WRITE(self, text)


class GuardedContentNode(ContentNode):
    """Template text, written within the output limit."""

    __slots__ = ()

    def render_to_output(self, _: RenderContext, buffer: TextIO) -> int:
        """Write the text, or raise if the output would pass its limit."""
        text = self.text
        if type(buffer) is OutputBuffer:
            if buffer.tell() + len(text) > buffer.limit:
                raise _output_limit()
            return _RAW_WRITE(buffer, text)
        return buffer.write(text)


class GuardedOutputNode(OutputNode):
    """``{{ … }}``, written within the output limit."""

    __slots__ = ()

    def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
        """Write the value, or raise if the output would pass its limit."""
        text = to_liquid_string(self.expression.evaluate(context), context.autoescape)
        if type(buffer) is OutputBuffer:
            if buffer.tell() + len(text) > buffer.limit:
                raise _output_limit()
            return _RAW_WRITE(buffer, text)
        return buffer.write(text)


class GuardedEchoNode(EchoNode):
    """``{% echo … %}``, written within the output limit."""

    __slots__ = ()

    render_to_output = GuardedOutputNode.render_to_output


def guard_filter(func: Callable[..., Any], *, max_items: int, max_string: int) -> Callable[..., Any]:
    """Wrap a filter so it refuses ranges longer than ``max_items`` and returns no longer string."""

    def guarded(left: object, *args: object, **kwargs: object) -> object:
        if type(left) is range and len(left) > max_items:
            raise ValueSizeLimitError("range too long for a filter", token=None)
        for arg in args:
            if type(arg) is range and len(arg) > max_items:
                raise ValueSizeLimitError("range too long for a filter", token=None)
        result = func(left, *args, **kwargs)
        if type(result) is str and len(result) > max_string:
            raise ValueSizeLimitError("filter result too large", token=None)
        return result

    # python-liquid reads flags such as ``with_context`` off the filter function itself.
    guarded.__dict__.update(getattr(func, "__dict__", {}))
    guarded.__doc__ = func.__doc__
    # compiled.py makes the same checks inline around the filter itself
    guarded.guarded_filter = func  # type: ignore[attr-defined]
    guarded.guard_limits = (max_items, max_string)  # type: ignore[attr-defined]
    return guarded


_UNLIMITED = RenderBudget.unlimited()


class GuardedContext(RenderContext):
    """A render context with a time budget and per-render snippets, inherited by every copy."""

    __slots__ = ("budget", "snippets")

    def __init__(
        self,
        template: BoundTemplate,
        *,
        globals: Mapping[str, object] | None = None,  # python-liquid's name
        disabled_tags: list[str] | None = None,
        copy_depth: int = 0,
        parent_context: RenderContext | None = None,
        loop_iteration_carry: int = 1,
        local_namespace_size_carry: int = 0,
    ) -> None:
        super().__init__(
            template,
            globals=globals,
            disabled_tags=disabled_tags,
            copy_depth=copy_depth,
            parent_context=parent_context,
            loop_iteration_carry=loop_iteration_carry,
            local_namespace_size_carry=local_namespace_size_carry,
        )
        if isinstance(parent_context, GuardedContext):
            self.budget: RenderBudget = parent_context.budget
            self.snippets: Mapping[str, str] | None = parent_context.snippets
            self.budget.check()
        else:
            self.budget = _UNLIMITED
            self.snippets = None

    def filter(self, name: str, token: Token | None) -> Callable[..., object]:
        """Return the named filter after checking the time budget."""
        if perf_counter() > self.budget.wall_deadline:
            self.budget.recheck()
        return super().filter(name, token)

    def get_buffer(self, buf: TextIO | None = None) -> StringIO:
        """Return a capture buffer that shares the output limit with ``buf``."""
        limit = self.env.output_stream_limit
        if limit is None:
            return StringIO()
        carry = buf.tell() if isinstance(buf, OutputBuffer) else 0
        return OutputBuffer(limit=limit - carry)

    @contextmanager
    def loop(self, namespace: Mapping[str, object], forloop: ForLoop | TableRow) -> Iterator[RenderContext]:
        """Enter a loop whose every iteration checks the time budget."""
        self.budget.check()
        forloop.it = _budgeted(forloop.it, self.budget)
        with super().loop(namespace, forloop) as ctx:
            yield ctx


class GuardedTemplate(BoundTemplate):
    """A bound template rendered with ``GuardedContext``."""

    context_class = GuardedContext
    #: the template compiled to Python (``compiled.py``), or None: rendered by python-liquid
    fast: Any = None


def apply_limits(env: Environment, limits: RenderLimits) -> None:
    """Set python-liquid's own limits on ``env`` and guard every registered filter."""
    env.loop_iteration_limit = limits.max_loop_iterations  # type: ignore[misc]
    env.output_stream_limit = limits.max_output_chars  # type: ignore[misc]
    env.context_depth_limit = limits.max_context_depth  # type: ignore[misc]
    env.local_namespace_limit = limits.max_local_bytes  # type: ignore[misc]
    env.block_nesting_limit = limits.max_block_nesting  # type: ignore[misc]
    env.tags[TOKEN_CONTENT].node_class = GuardedContentNode  # type: ignore[attr-defined]
    env.tags[TOKEN_OUTPUT].node_class = GuardedOutputNode  # type: ignore[attr-defined]
    env.tags["echo"].node_class = GuardedEchoNode  # type: ignore[attr-defined]
    for name, func in list(env.filters.items()):
        env.filters[name] = guard_filter(
            func, max_items=limits.max_loop_iterations, max_string=limits.max_output_chars
        )
