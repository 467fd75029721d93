"""Bounded input types for request schemas: what the stores can hold, refused as 400 at the edge.

An id or a time a client sends must fit the database and the code that converts it: SQLite cannot bind an
integer past 64 bits (``OverflowError``), PostgreSQL refuses it, and ``9999-12-31T23:59:59-05:00`` has no
UTC equivalent (``datetime`` stops at year 9999). Without these bounds such values surfaced as 500s deep
in a query or a conversion, found by fuzzing the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from rapport.kit.clock import as_utc

#: The largest id a row can have (a signed 64-bit integer on both stores).
MAX_ID = 2**63 - 1

#: The id of a row (a profile, a segment, a template, a quarantined event).
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _in_utc(value: datetime) -> datetime:
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError("is out of range: it has no UTC time between the years 1 and 9999") from None


#: A moment a client gives (a send time, a time bound); aware and in UTC once validated.
Moment = Annotated[datetime, AfterValidator(_in_utc)]
