"""CSV import of products: the header maps to product fields, each bad row is reported and skipped.

Headers are matched without case, spaces or dashes: ``id``/``product_id``/``sku``, ``name``/``title``,
``category``, ``price``, ``currency``, ``url``/``link``, ``image``/``image_url``, ``stock``; every other
column becomes an attribute. The delimiter is the most frequent of ``,``, ``;`` and tab on the header line.
Good rows are upserted by product id in batches (the caller's transaction, flushed per batch); a row with
any bad field is refused whole, with one ``(row, field, reason)`` per problem, where ``row`` is the row
number a spreadsheet shows (the header is row 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from rapport.catalog import service
from rapport.catalog.validation import (
    FieldError,
    ProductFields,
    map_headers,
    row_from_cells,
    validate_product,
)
from rapport.errors import ValidationFailed
from rapport.runtime import Runtime

DEFAULT_BATCH = 500
#: Errors kept in a report; the count of refused rows is always exact.
MAX_ERRORS = 1000
_DELIMITERS = (",", ";", "\t")

Progress = Callable[[int], None]


@dataclass
class ImportReport:
    """What an import did: rows read, products created and replaced, rows refused and why."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    refused: int = 0
    errors: list[FieldError] = field(default_factory=list)
    errors_truncated: bool = False

    @property
    def imported(self) -> int:
        """Rows whose product was stored."""
        return self.rows - self.refused

    def add_errors(self, errors: list[FieldError]) -> None:
        """Count a refused row and keep its errors (up to :data:`MAX_ERRORS`)."""
        self.refused += 1
        room = MAX_ERRORS - len(self.errors)
        if len(errors) > room:
            self.errors_truncated = True
        self.errors.extend(errors[: max(room, 0)])


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _records(lines: Iterable[str]) -> Iterator[list[str]]:
    stream = iter(lines)
    try:
        first = next(stream)
    except StopIteration:
        return
    except UnicodeDecodeError:
        raise ValidationFailed("the file is not UTF-8 text", code="bad_encoding") from None

    def chained() -> Iterator[str]:
        yield first
        yield from stream

    reader = csv.reader(chained(), delimiter=_delimiter(first))
    try:
        yield from reader
    except UnicodeDecodeError:
        raise ValidationFailed(
            f"the file is not UTF-8 text (after row {reader.line_num})", code="bad_encoding"
        ) from None
    except csv.Error as exc:
        raise ValidationFailed(f"the CSV is malformed near line {reader.line_num}: {exc}") from None


def import_csv_lines(
    db: Session,
    *,
    workspace_id: int,
    lines: Iterable[str],
    now: datetime,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> ImportReport:
    """Import products from CSV text lines (opened with ``newline=""``); file-level problems (no header,
    a missing id or name column, not UTF-8) raise ValidationFailed before anything is written."""
    records = _records(lines)
    header_cells = next(records, None)
    if header_cells is None:
        raise ValidationFailed("the file is empty: expected a header line", code="empty_file")
    if header_cells and header_cells[0].startswith("\ufeff"):
        header_cells[0] = header_cells[0][1:]
    header, problems = map_headers(header_cells)
    if header is None:
        raise ValidationFailed(
            "the header line is not usable: " + "; ".join(problems),
            code="bad_header",
            details=[{"row": 1, "field": "", "reason": p} for p in problems],
        )
    report = ImportReport()
    batch: list[ProductFields] = []
    seen: set[str] = set()

    def flush() -> None:
        counts = service.upsert_valid(db, workspace_id=workspace_id, rows=batch, now=now)
        # a product repeated across batches is counted once, when first stored
        already = len({row.product_id for row in batch} & seen)
        report.created += counts.created
        report.updated += counts.updated - already
        seen.update(row.product_id for row in batch)
        batch.clear()
        db.flush()
        if progress is not None:
            progress(report.rows)

    for number, cells in enumerate(records, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line is not a product
        report.rows += 1
        if len(cells) > len(header_cells):
            report.add_errors([FieldError(number, "", f"{len(cells)} cells but {len(header_cells)} headers")])
            continue
        fields, errors = validate_product(row_from_cells(header, cells), row=number)
        if fields is None:
            report.add_errors(errors)
            continue
        batch.append(fields)
        if len(batch) >= batch_size:
            flush()
    flush()
    return report


def import_csv_bytes(db: Session, *, workspace_id: int, data: bytes, now: datetime) -> ImportReport:
    """Import products from the bytes of an uploaded CSV file (UTF-8, with or without a BOM)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("the file is not UTF-8 text", code="bad_encoding") from None
    return import_csv_lines(db, workspace_id=workspace_id, lines=io.StringIO(text, newline=""), now=now)


def import_rows(
    runtime: Runtime, *, workspace_id: int, rows: Iterable[Mapping[str, Any]]
) -> service.BatchResult:
    """Upsert plain product dicts (JSON names and aliases, e.g. ``sku``) in a transaction of their own; for
    the demo and scripts. Bad rows are reported by 0-based index, the others stored."""
    with runtime.sessions() as db:
        result = service.upsert_batch(
            db, workspace_id=workspace_id, bodies=[dict(r) for r in rows], now=runtime.clock.now()
        )
        db.commit()
    return result
