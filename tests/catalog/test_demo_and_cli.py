"""The demo fills the catalogue and its purchases drive recommendations; ``rapport products import``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from rapport.catalog import service
from rapport.cli import app as cli_app
from rapport.kit.pagination import Page
from rapport.models import Event, Profile
from rapport.runtime import Runtime
from rapport.synth.catalogue import PRODUCTS
from rapport.synth.demo import fill_workspace
from tests.support.tenants import Tenant

REF = datetime(2026, 6, 1, tzinfo=UTC)


def test_the_demo_loads_its_products_and_recommends_from_its_orders(runtime: Runtime, tenant: Tenant) -> None:
    fill_workspace(runtime, workspace_id=tenant.workspace_id, customers=80, seed=5, reference_date=REF,
                   show_progress=False)  # fmt: skip
    with runtime.read_sessions() as db:
        products, total = service.list_products(db, workspace_id=tenant.workspace_id, page=Page(limit=1000))
        assert total == len(PRODUCTS)
        assert {(p.product_id, p.name, p.category, p.price) for p in products} == {
            (p.sku, p.name, p.category, p.price) for p in PRODUCTS
        }
        buyers = list(
            db.scalars(
                select(Event.profile_id)
                .where(Event.workspace_id == tenant.workspace_id, Event.event == "order_completed")
                .group_by(Event.profile_id)
                .having(func.count() >= 2)
            )
        )
        buyers_ids = [int(pid) for pid in buyers if pid is not None]
        everyone = list(db.scalars(select(Profile.id).where(Profile.workspace_id == tenant.workspace_id)))
        assert buyers_ids, "the demo should have repeat buyers"
        found = service.recommendations_for(
            db, workspace_id=tenant.workspace_id, profile_ids=everyone, limit=3, now=REF
        )
    assert all(len(v) == 3 for v in found.values())
    assert [found[pid][0]["reason"] for pid in buyers_ids] == ["bought_together"] * len(buyers_ids)


def test_the_cli_imports_a_csv_and_lists_refused_rows(
    runtime: Runtime, tenant: Tenant, tmp_path: Path, db_url: str
) -> None:
    source = tmp_path / "products.csv"
    source.write_text("id,name,price,colour\na,Apple,1,red\nb,,x,\n=c,Cherry,2,\n", encoding="utf-8")
    errors = tmp_path / "errors.csv"
    result = CliRunner().invoke(
        cli_app,
        ["products", "import", str(source), "--database-url", db_url, "--workspace", tenant.slug,
         "--errors", str(errors)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "refused rows" in result.output and "is required" in result.output
    assert errors.read_text(encoding="utf-8").splitlines() == [
        "row,field,reason",
        "3,name,is required",
        "3,price,\"must be a number, not 'x'\"",
    ]
    with runtime.read_sessions() as db:
        apple = service.get_product(db, workspace_id=tenant.workspace_id, product_id="a")
        assert (apple.name, apple.price, apple.attributes) == ("Apple", 1.0, {"colour": "red"})
        assert service.get_product(db, workspace_id=tenant.workspace_id, product_id="=c").name == "Cherry"
    missing = CliRunner().invoke(
        cli_app, ["products", "import", str(tmp_path / "nope.csv"), "--database-url", db_url]
    )
    assert missing.exit_code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,price\n1,2\n", encoding="utf-8")
    refused = CliRunner().invoke(
        cli_app, ["products", "import", str(bad), "--database-url", db_url, "--workspace", tenant.slug]
    )
    assert refused.exit_code == 1 and "no name column" in refused.output
