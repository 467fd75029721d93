"""The new-campaign form in the marketer's terms: every numeric input with its label, unit and bounds (the
API schema's bounds, in the form's unit), the form turned into the API's create body, and every problem (the
form's own, the schema's, the service's) told with the input's label and tied to the input it is about.

Pure: no session, no request. ``campaigns_ui`` renders what ``check_form`` returns; the template takes the
bounds for its inputs' ``min``/``max`` from ``NUMBERS``, so the browser refuses first what the server refuses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from rapport.campaigns import schedule
from rapport.campaigns import schemas as limits
from rapport.campaigns.schemas import CampaignCreate
from rapport.errors import RapportError
from rapport.kit.bounds import MAX_ID

VARIANT_KEYS = ("A", "B", "C", "D")


def _figure(value: float) -> str:
    """A number as people read it: 525,600; 0.1; -3,650."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,g}"


def _plain(value: float) -> str:
    """A number as an HTML ``min``/``max`` attribute takes it: 525600; 0.1."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def sentence(text: str) -> str:
    """A service's message as a sentence of the page: "The send time …" for "the send time …"."""
    return text[:1].upper() + text[1:]


@dataclass(frozen=True, slots=True)
class NumberInput:
    """A numeric input of the form: the label people see, its bounds in the form's unit, and that unit."""

    label: str
    low: float
    high: float
    unit: str = ""
    whole: bool = True
    #: What the upper bound amounts to, when that helps ("a year").
    meaning: str = ""

    @property
    def min_attr(self) -> str:
        """The lower bound for the input's ``min`` attribute."""
        return _plain(self.low)

    @property
    def max_attr(self) -> str:
        """The upper bound for the input's ``max`` attribute."""
        return _plain(self.high)

    def amount(self, value: float) -> str:
        """``value`` with the unit: "1 day", "525,600 minutes", "90 %"."""
        first, space, rest = self.unit.partition(" ")
        if value == 1 and first.endswith("s"):
            first = first[:-1]
        unit = f"{first}{space}{rest}"
        return f"{_figure(value)} {unit}" if unit else _figure(value)

    def expected(self) -> str:
        """What the input takes: "Delay must be a whole number from 0 to 525,600 minutes"."""
        kind = "a whole number" if self.whole else "a number"
        return f"{self.label} must be {kind} from {_figure(self.low)} to {self.amount(self.high)}"

    def parse(self, raw: str) -> tuple[float | None, str | None]:
        """The number typed (None when left empty), or why it cannot be taken."""
        text = raw.strip()
        if not text:
            return None, None
        try:
            value = float(text)
        except ValueError:
            return None, self.expected()
        if math.isnan(value):
            return None, self.expected()
        if value > self.high:  # infinity (1e400) included
            meaning = f" ({self.meaning})" if self.meaning else ""
            return None, f"{self.label} must be at most {self.amount(self.high)}{meaning}"
        if value < self.low:
            return None, f"{self.label} must be at least {self.amount(self.low)}"
        if self.whole and not value.is_integer():
            return None, self.expected()
        return (float(int(value)) if self.whole else value), None


#: Every numeric input of the form by its name. The bounds are the schema's (``campaigns/schemas.py``),
#: converted to the unit the form asks in; docs/campaigns.md lists them.
NUMBERS: dict[str, NumberInput] = {
    "trigger_max_age_hours": NumberInput(
        "Ignore events older than", 0.1, limits.MAX_AGE_HOURS, "hours", whole=False, meaning="366 days"
    ),
    "delay_minutes": NumberInput("Delay", 0, limits.MAX_DELAY_SECONDS // 60, "minutes", meaning="a year"),
    "date_offset_days": NumberInput(
        "Days from the date", -limits.MAX_OFFSET_DAYS, limits.MAX_OFFSET_DAYS, "days", meaning="ten years"
    ),
    "reentry_days": NumberInput(
        "Days between entries", 1, limits.MAX_REENTRY_DAYS, "days", meaning="ten years"
    ),
    **{
        f"variant_{key}_weight": NumberInput(f"Weight of variant {key}", 0, limits.MAX_WEIGHT)
        for key in VARIANT_KEYS
    },
    "control_percent": NumberInput("Control group", 0, limits.MAX_CONTROL_PERCENT, "%", whole=False),
    "test_percent": NumberInput("Test share", 0, limits.MAX_TEST_PERCENT, "%", whole=False),
    "test_hours": NumberInput(
        "Test length", 1, limits.MAX_TEST_HOURS, "hours", whole=False, meaning="30 days"
    ),
    "throttle_per_hour": NumberInput("Throttle", 1, limits.MAX_THROTTLE_PER_HOUR, "messages per hour"),
    "goal_days": NumberInput("Conversion window", 1, limits.MAX_GOAL_DAYS, "days", meaning="a year"),
    "cost_per_message": NumberInput("Cost per message", 0, limits.MAX_COST_PER_MESSAGE, whole=False),
}

#: The other inputs' labels, as the form shows them.
LABELS: dict[str, str] = {
    "name": "Name",
    "description": "Description",
    "kind": "Kind",
    "channel": "Channel",
    "topic": "Topic",
    "segment_ids": "Send to members of",
    "exclude_segment_ids": "Except members of",
    "trigger_type": "Starts when",
    "trigger_event": "Event name",
    "trigger_where": "Only when",
    "trigger_segment_id": "Segment",
    "date_trait": "Date trait",
    "date_at": "At (recipient's local time)",
    "reentry": "A person can enter",
    "variants": "Variants",
    "metric": "Winner by",
    "method": "Decided by",
    "send_at": "Date and time",
    "local_time": "Local time",
    "goal_event": "Conversion event",
    "goal_revenue_property": "Revenue property",
    "seed_addresses": "Seed addresses",
    **{f"variant_{key}_template": f"Template of variant {key}" for key in VARIANT_KEYS},
    **{f"variant_{key}_name": f"Name of variant {key}" for key in VARIANT_KEYS},
    **{name: number.label for name, number in NUMBERS.items()},
}

#: Where the API body's fields are asked for in the form (``trigger`` and ``variants`` depend on the body).
_INPUTS: dict[str, str] = {
    "delay_seconds": "delay_minutes",
    "experiment.test_percent": "test_percent",
    "experiment.test_hours": "test_hours",
    "experiment.metric": "metric",
    "experiment.method": "method",
    "trigger.type": "trigger_type",
    "trigger.event": "trigger_event",
    "trigger.where": "trigger_where",
    "trigger.max_age_hours": "trigger_max_age_hours",
    "trigger.segment_id": "trigger_segment_id",
    "trigger.trait": "date_trait",
    "trigger.offset_days": "date_offset_days",
    "trigger.at": "date_at",
}
_VARIANT_PARTS = {"template_id": "template", "name": "name", "weight": "weight"}


#: The inputs in the order the form shows them: the problems are listed in that order too.
_ORDER: tuple[str, ...] = (
    *("name", "description", "kind", "channel", "topic", "segment_ids", "exclude_segment_ids"),
    *("trigger_type", "trigger_event", "trigger_where", "trigger_max_age_hours", "trigger_segment_id"),
    *("delay_minutes", "date_trait", "date_offset_days", "date_at", "reentry", "reentry_days"),
    *(f"variant_{key}_{part}" for key in VARIANT_KEYS for part in ("template", "name", "weight")),
    *("variants", "control_percent", "test_percent", "metric", "method", "test_hours"),
    *("send_at", "local_time", "throttle_per_hour"),
    *("goal_event", "goal_days", "goal_revenue_property", "cost_per_message", "seed_addresses"),
)


@dataclass(frozen=True, slots=True)
class FormError:
    """One problem in the form's words; ``input`` is the name of the input it is about (None: the form)."""

    input: str | None
    message: str


@dataclass(frozen=True, slots=True)
class CheckedForm:
    """The create body the form asked for, the campaign when nothing is wrong, and every problem found."""

    body: dict[str, Any]
    data: CampaignCreate | None
    errors: list[FormError]


class _Reader:
    """Reads the form's inputs, noting each problem instead of stopping at the first."""

    def __init__(self, form: FormData) -> None:
        self.form = form
        self.errors: list[FormError] = []

    def text(self, name: str, default: str = "") -> str:
        return str(self.form.get(name) or default)

    def number(self, name: str, default: float | None = None) -> float | None:
        value, problem = NUMBERS[name].parse(self.text(name))
        if problem is not None:
            self.errors.append(FormError(name, problem))
        return default if value is None else value

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.number(name)
        return default if value is None else int(value)

    def ids(self, name: str, raws: Sequence[Any]) -> list[int]:
        found = []
        for raw in raws:
            text = str(raw).strip()
            if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
                self.errors.append(FormError(name, f"{LABELS[name]}: choose one of the options offered"))
                continue
            found.append(int(text))
        return found


def check_form(form: FormData, *, timezone: str, now: datetime) -> CheckedForm:
    """Turn the new-campaign form into the API's create body and check it against the schema, collecting
    every problem with the input it is about (a send time more than a minute past is one of them)."""
    read = _Reader(form)
    body = _body(read, timezone=timezone, now=now)
    errors = list(read.errors)
    data: CampaignCreate | None = None
    try:
        data = CampaignCreate.model_validate(body)
    except ValidationError as exc:
        flagged = {e.input for e in errors}
        for error in schema_errors(exc, body=body):
            if error.input not in flagged:
                errors.append(error)
                flagged.add(error.input)
    errors.sort(key=lambda e: _ORDER.index(e.input) if e.input in _ORDER else len(_ORDER))
    return CheckedForm(body=body, data=None if errors else data, errors=errors)


def _body(read: _Reader, *, timezone: str, now: datetime) -> dict[str, Any]:
    kind = read.text("kind", "broadcast")
    body: dict[str, Any] = {
        "name": read.text("name").strip(),
        "description": read.text("description"),
        "kind": kind,
        "channel": read.text("channel", "email"),
        "topic": read.text("topic"),
        "control_percent": read.number("control_percent", 0.0),
        "goal_event": read.text("goal_event", "order_completed").strip(),
        "goal_days": read.integer("goal_days", 7),
        "goal_revenue_property": read.text("goal_revenue_property", "total").strip(),
        "cost_per_message": read.number("cost_per_message"),
        "seed_addresses": [a.strip() for a in read.text("seed_addresses").split(",") if a.strip()],
    }
    variants = []
    for key in VARIANT_KEYS:
        chosen = read.text(f"variant_{key}_template")
        template = read.ids(f"variant_{key}_template", [chosen]) if chosen else []
        if not template:
            continue
        variants.append(
            {
                "key": key,
                "name": read.text(f"variant_{key}_name").strip() or f"Variant {key}",
                "template_id": template[0],
                "weight": read.integer(f"variant_{key}_weight", 1),
            }
        )
    if not variants and not any(e.input == "variant_A_template" for e in read.errors):
        read.errors.append(FormError("variant_A_template", "Choose a template for variant A"))
    body["variants"] = variants
    test_percent = read.number("test_percent", 0.0) or 0.0
    if test_percent > 0:
        body["experiment"] = {
            "test_percent": test_percent,
            "metric": read.text("metric", "conversion"),
            "method": read.text("method", "significance"),
            "test_hours": read.number("test_hours", 24.0),
            "send_winner": read.form.get("send_winner") is not None,
        }
    if kind == "broadcast":
        body["segment_ids"] = read.ids("segment_ids", read.form.getlist("segment_ids"))
        body["exclude_segment_ids"] = read.ids(
            "exclude_segment_ids", read.form.getlist("exclude_segment_ids")
        )
        when = read.text("when", "now")
        if when == "at":
            body["send_at"] = _send_at(read, timezone=timezone, now=now)
        elif when == "local":
            body["local_time"] = read.text("local_time", "09:00")
        throttle = read.integer("throttle_per_hour")
        if throttle:
            body["throttle_per_hour"] = throttle
        return body
    body["reentry"] = read.text("reentry", "once")
    body["reentry_days"] = read.integer("reentry_days")
    if kind == "triggered":
        trigger_type = read.text("trigger_type", "event")
        trigger: dict[str, Any] = {"type": trigger_type}
        if trigger_type == "event":
            trigger["event"] = read.text("trigger_event").strip()
            if read.text("trigger_where").strip():
                trigger["where"] = read.text("trigger_where").strip()
            max_age = read.number("trigger_max_age_hours")
            if max_age is not None:
                trigger["max_age_hours"] = max_age
        else:
            chosen = read.text("trigger_segment_id")
            segment = read.ids("trigger_segment_id", [chosen]) if chosen else []
            trigger["segment_id"] = segment[0] if segment else None
        body["trigger"] = trigger
        body["delay_seconds"] = (read.integer("delay_minutes", 0) or 0) * 60
    else:
        body["trigger"] = {
            "type": "date",
            "trait": read.text("date_trait").strip(),
            "offset_days": read.integer("date_offset_days", 0),
            "at": read.text("date_at", "09:00"),
            "anniversary": read.form.get("date_anniversary") is not None,
        }
    return body


def _send_at(read: _Reader, *, timezone: str, now: datetime) -> str | None:
    """The send time typed (workspace time) in UTC, or None after noting why it cannot be taken."""
    raw = read.text("send_at")
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        read.errors.append(FormError("send_at", "Choose the date and time to send at"))
        return None
    tz = schedule.zone(timezone)
    at = local.replace(tzinfo=tz).astimezone(UTC)
    if schedule.send_at_passed(at, now=now):
        read.errors.append(FormError("send_at", sentence(schedule.past_send_at_message(at, tz))))
    return at.isoformat()


def input_for(field: str, *, body: dict[str, Any]) -> str | None:
    """The form input that asks for the API body's ``field`` (dotted: ``trigger.offset_days``,
    ``variants.1.weight``), or None when the form has no such input."""
    parts = field.split(".")
    if parts[0] == "variants":
        if len(parts) >= 3 and parts[1].isdigit() and parts[2] in _VARIANT_PARTS:
            variants = body.get("variants") or []
            index = int(parts[1])
            if index < len(variants):
                return f"variant_{variants[index]['key']}_{_VARIANT_PARTS[parts[2]]}"
        return "variants"
    if parts[0] in {"segment_ids", "exclude_segment_ids", "seed_addresses"}:
        return parts[0]  # one item of a list: the list's input
    if field == "trigger":
        return "date_trait" if body.get("kind") == "date_relative" else "trigger_type"
    name = _INPUTS.get(field, field)
    return name if name in LABELS else None


def schema_errors(exc: ValidationError, *, body: dict[str, Any]) -> list[FormError]:
    """The schema's complaints about the body, each told with the label of the input it is about."""
    found = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error.get("loc", ()))
        name = "variant_A_template" if field == "variants" else input_for(field, body=body)
        found.append(FormError(name, _schema_message(error, name)))
    return found


def _schema_message(error: Any, name: str | None) -> str:
    label = LABELS.get(name or "", "This form")
    number = NUMBERS.get(name or "")
    if number is not None:
        return number.expected()
    kind, ctx = error.get("type"), error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return f"{label} is required"
    if kind == "string_too_long":
        return f"{label} takes at most {ctx.get('max_length'):,} characters"
    if kind == "too_long":
        return f"{label} takes at most {ctx.get('max_length'):,} entries"
    if kind == "string_pattern_mismatch":
        return f"{label} must be a time like 09:30"
    if kind == "literal_error":
        return f"{label}: choose one of the options offered"
    message = str(error.get("msg", "is not valid"))
    return f"{label}: {message[:1].lower()}{message[1:]}"


def service_error(exc: RapportError, *, body: dict[str, Any]) -> FormError:
    """A refusal of the service, tied to the input its ``details.field`` names."""
    field = exc.details.get("field") if isinstance(exc.details, dict) else None
    name = input_for(str(field), body=body) if field else None
    return FormError(name, sentence(exc.message))
