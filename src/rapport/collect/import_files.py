"""Import files: stream CSV or JSONL rows, rename columns by a mapping, write the per-row error report.

Memory stays flat whatever the file size: rows are read one at a time and handed to the row importers,
which work in batches. The error report is a CSV of ``row,column,reason`` whose cells are made safe for
spreadsheets (R25: a cell starting with = + - @ TAB or CR is prefixed with ').
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rapport.collect import import_pipeline
from rapport.collect.importer import (
    DEFAULT_BATCH,
    FAST_JSON_KEY,
    PARSE_ERROR_KEY,
    ImportReport,
    Progress,
    RowError,
    apply_events,
    apply_profiles,
    import_event_rows,
    import_profile_rows,
    load_rules,
)
from rapport.errors import ValidationFailed
from rapport.kit import fastjson
from rapport.runtime import Runtime

FORMATS = ("csv", "jsonl")
KINDS = ("profiles", "events")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_JSON_COLUMNS = ("properties", "traits", "context")


def safe_cell(value: Any) -> str:
    """Return ``value`` as a spreadsheet-safe cell (R25)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def detect_format(path: Path, given: str | None = None) -> str:
    """Return csv or jsonl from ``given`` or the file suffix (.csv, .jsonl, .ndjson, .json)."""
    if given:
        fmt = given.lower()
    else:
        suffix = path.suffix.lower()
        fmt = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(
            suffix, ""
        )
    if fmt not in FORMATS:
        raise ValidationFailed("cannot tell the file format; name it .csv or .jsonl or pass --format")
    return fmt


def parse_mapping(pairs: Iterable[str] = (), mapping_file: Path | None = None) -> dict[str, str]:
    """Build a column mapping from ``csv_col=field`` pairs and/or a JSON object file."""
    mapping: dict[str, str] = {}
    if mapping_file is not None:
        loaded = json.loads(mapping_file.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise ValidationFailed("the mapping file must be a JSON object of column → field names")
        mapping.update({str(k): v for k, v in loaded.items()})
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source:
            raise ValidationFailed(f"mapping {pair!r} is not csv_col=field")
        mapping[source] = target
    return mapping


def _set_path(row: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = row
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def map_row(row: Mapping[str, Any], mapping: Mapping[str, str], *, nested: bool) -> dict[str, Any]:
    """Rename columns (an empty target drops the column); with ``nested``, ``a.b`` targets nest."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        target = mapping.get(key, key)
        if not target or target == "-":
            continue
        if nested and "." in target:
            _set_path(out, target, value)
        else:
            out[target] = value
    return out


def _csv_rows(handle: IO[str], *, events: bool) -> Iterator[dict[str, Any]]:
    reader = csv.DictReader(handle)
    for raw in reader:
        row: dict[str, Any] = {k: v for k, v in raw.items() if k is not None}
        if None in raw:
            row[PARSE_ERROR_KEY] = "the row has more cells than the header"
        if events:
            for name in _JSON_COLUMNS:
                value = row.get(name)
                if isinstance(value, str) and value.strip().startswith("{"):
                    try:
                        row[name] = json.loads(value)
                    except json.JSONDecodeError:
                        row[PARSE_ERROR_KEY] = f"{name}: not a JSON object"
                elif isinstance(value, str) and not value.strip():
                    row.pop(name)
        yield row


def _jsonl_rows(handle: IO[str], *, mark_fast: bool = False) -> Iterator[dict[str, Any]]:
    # orjson where it reads exactly what the standard library would (kit.fastjson.fast_loads), else stdlib: the
    # parse is a third of an import's reading cost. ``mark_fast``: every event row carries FAST_JSON_KEY
    # (overwriting a line's own key of that name), true when orjson read a line without a \u0000 escape,
    # so validation only measures it (no NaN, NUL or lone surrogate can be in it).
    fast_loads = fastjson.fast_loads
    for line in handle:
        text = line.strip()
        if not text:
            continue
        data = text.encode("utf-8")
        ok, value = fast_loads(data)
        if not ok:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield {PARSE_ERROR_KEY: f"not JSON: {exc.msg} at column {exc.colno}"}
                continue
        if not isinstance(value, dict):
            yield {PARSE_ERROR_KEY: "each line must be a JSON object"}
            continue
        if mark_fast:
            value[FAST_JSON_KEY] = ok and b"\\u0000" not in data
        yield value


def read_rows(
    path: Path, *, fmt: str, kind: str, mapping: Mapping[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the file's rows one at a time, mapped; unreadable rows carry PARSE_ERROR_KEY."""
    events = kind == "events"
    read = 0
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        rows = _csv_rows(handle, events=events) if fmt == "csv" else _jsonl_rows(handle, mark_fast=events)
        try:
            for row in rows:
                read += 1
                if mapping and PARSE_ERROR_KEY not in row:
                    row = map_row(row, mapping, nested=events)
                yield row
        except UnicodeDecodeError:
            raise ValidationFailed(
                f"the file is not UTF-8 text{f' after row {read:,}' if read else ''}: save it as UTF-8 and "
                "import it again",
                code="bad_encoding",
            ) from None
        except csv.Error as exc:  # e.g. a cell past the csv module's 128 KB field limit
            raise ValidationFailed(
                f"the CSV is malformed after row {read:,}: {exc}", code="bad_csv"
            ) from None


class ErrorReportWriter:
    """Writes refused rows to a CSV file as they happen (``row,column,reason``), spreadsheet-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle: IO[str] | None = None
        self._writer: Any = None

    def __enter__(self) -> ErrorReportWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(["row", "column", "reason"])
        return self

    def __call__(self, error: RowError) -> None:
        """Write one refused row."""
        self.count += 1
        self._writer.writerow([error.row, safe_cell(error.column), safe_cell(error.reason)])

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.close()


def import_file(
    runtime: Runtime,
    *,
    workspace_id: int,
    path: Path,
    kind: str,
    fmt: str | None = None,
    mapping: Mapping[str, str] | None = None,
    error_path: Path | None = None,
    progress: Progress | None = None,
    batch_size: int | None = None,
    pipeline: bool | None = None,
) -> ImportReport:
    """Import a CSV or JSONL file of profiles or events; refused rows go to ``error_path`` (CSV).

    A big file is read and validated in a second process while this one writes (``pipeline``: None
    decides by size, see :mod:`.import_pipeline`)."""
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}")
    if not path.is_file():
        raise ValidationFailed("no such file")
    fmt = detect_format(path, fmt)
    if error_path is None:
        return _import(runtime, workspace_id, path, kind, fmt, mapping, progress, batch_size, pipeline, None)
    with ErrorReportWriter(error_path) as sink:
        return _import(runtime, workspace_id, path, kind, fmt, mapping, progress, batch_size, pipeline, sink)


def _import(
    runtime: Runtime,
    workspace_id: int,
    path: Path,
    kind: str,
    fmt: str,
    mapping: Mapping[str, str] | None,
    progress: Progress | None,
    batch_size: int | None,
    pipeline: bool | None,
    sink: ErrorReportWriter | None,
) -> ImportReport:
    size = batch_size or DEFAULT_BATCH
    if import_pipeline.use_pipeline(path, pipeline):
        prepared = import_pipeline.prepared_batches(
            path,
            fmt=fmt,
            kind=kind,
            mapping=mapping,
            rules=load_rules(runtime, workspace_id),
            now=runtime.clock.now(),
            batch_size=size,
        )
        apply = apply_profiles if kind == "profiles" else apply_events
        return apply(runtime, workspace_id=workspace_id, prepared=prepared, progress=progress, on_error=sink)
    rows = read_rows(path, fmt=fmt, kind=kind, mapping=mapping)
    importer = import_profile_rows if kind == "profiles" else import_event_rows
    return importer(
        runtime, workspace_id=workspace_id, rows=rows, progress=progress, on_error=sink, batch_size=size
    )
