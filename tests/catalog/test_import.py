"""CSV import on both databases: good rows are kept, bad rows are reported exactly, the header decides."""

from __future__ import annotations

import pytest

from rapport.catalog import importer, service
from rapport.catalog.validation import FieldError
from rapport.errors import ValidationFailed
from rapport.kit.pagination import Page
from rapport.runtime import Runtime
from tests.catalog.dataset import NOW
from tests.support.tenants import Tenant

CSV = (
    "id,name,category,price,currency,url,image,stock,colour\r\n"
    "p1,Mug,Kitchen,4.50,GBP,https://shop.test/p1,https://shop.test/p1.png,10,red\r\n"
    "p2,,Kitchen,abc,GBP,,,,\r\n"
    "p3,Plate,Kitchen,7,ZZZ,ftp://x,,-1,\r\n"
    "\r\n"
    'p4,"Bowl, large",Kitchen,,,,,,blue\r\n'
    "p1,Mug v2,Kitchen,5,GBP,,,0,\r\n"
    "p5,Too,many,cells,1,2,3,4,5,6\r\n"
)

EXPECTED_ERRORS = [
    FieldError(3, "name", "is required"),
    FieldError(3, "price", "must be a number, not 'abc'"),
    FieldError(4, "currency", "'ZZZ' is not an ISO 4217 currency code"),
    FieldError(4, "url", "must be an absolute http(s) URL"),
    FieldError(4, "stock", "must be between 0 and 2147483647"),
    FieldError(8, "", "10 cells but 9 headers"),
]


def _import(runtime: Runtime, tenant: Tenant, data: bytes) -> importer.ImportReport:
    with runtime.sessions() as db:
        report = importer.import_csv_bytes(db, workspace_id=tenant.workspace_id, data=data, now=NOW)
        db.commit()
    return report


def test_bad_rows_are_reported_and_good_rows_kept(runtime: Runtime, tenant: Tenant) -> None:
    report = _import(runtime, tenant, CSV.encode())
    assert (report.rows, report.imported, report.refused) == (6, 3, 3)
    assert (report.created, report.updated) == (2, 0)
    assert report.errors == EXPECTED_ERRORS
    with runtime.read_sessions() as db:
        rows, total = service.list_products(db, workspace_id=tenant.workspace_id, page=Page())
        assert total == 2
        by_id = {p.product_id: p for p in rows}
        mug, bowl = by_id["p1"], by_id["p4"]
        # the later row of p1 replaced the earlier one, whole
        assert (mug.name, mug.price, mug.stock, mug.url, mug.image_url, mug.attributes) == (
            "Mug v2",
            5.0,
            0,
            "",
            "",
            {},
        )
        assert (bowl.name, bowl.price, bowl.currency, bowl.stock, bowl.attributes) == (
            "Bowl, large",
            None,
            "GBP",
            None,
            {"colour": "blue"},
        )


def test_reimport_updates_and_counts_across_batches(runtime: Runtime, tenant: Tenant) -> None:
    _import(runtime, tenant, CSV.encode())
    again = "product_id;name;price\np4;Bowl;3\np9;New;1\np4;Bowl again;4\n"
    with runtime.sessions() as db:
        report = importer.import_csv_lines(
            db, workspace_id=tenant.workspace_id, lines=again.splitlines(keepends=True), now=NOW, batch_size=1
        )
        db.commit()
    assert (report.rows, report.created, report.updated, report.refused) == (3, 1, 1, 0)
    with runtime.read_sessions() as db:
        bowl = service.get_product(db, workspace_id=tenant.workspace_id, product_id="p4")
        assert (bowl.name, bowl.price, bowl.category, bowl.attributes) == ("Bowl again", 4.0, "", {})


def test_a_bom_and_a_tab_delimiter_are_understood(runtime: Runtime, tenant: Tenant) -> None:
    data = "\ufeffSKU\tTitle\tImage URL\nA-1\tTea towel\thttps://shop.test/a.png\n".encode()
    report = _import(runtime, tenant, data)
    assert (report.rows, report.created, report.errors) == (1, 1, [])
    with runtime.read_sessions() as db:
        towel = service.get_product(db, workspace_id=tenant.workspace_id, product_id="A-1")
        assert (towel.name, towel.image_url) == ("Tea towel", "https://shop.test/a.png")


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        (b"", "empty_file", "the file is empty: expected a header line"),
        (
            b"id,title2,price\n1,x,2\n",
            "bad_header",
            "the header line is not usable: no name column (a header named name or title)",
        ),
        (b"id,name\n1,caf\xe9\n", "bad_encoding", "the file is not UTF-8 text"),
    ],
)
def test_file_level_problems_refuse_the_whole_file(
    runtime: Runtime, tenant: Tenant, data: bytes, code: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _import(runtime, tenant, data)
    assert (caught.value.code, caught.value.message) == (code, message)
    with runtime.read_sessions() as db:
        assert service.list_products(db, workspace_id=tenant.workspace_id, page=Page())[1] == 0


def test_errors_are_capped_but_refusals_counted(runtime: Runtime, tenant: Tenant) -> None:
    data = "id,name,price\n" + "".join(f"b{i},,x\n" for i in range(600)) + "ok,Fine,1\n"
    report = _import(runtime, tenant, data.encode())
    assert (report.rows, report.refused, report.created) == (601, 600, 1)
    assert len(report.errors) == importer.MAX_ERRORS and report.errors_truncated
    assert report.errors[0] == FieldError(2, "name", "is required")
