"""Data › Products over HTTP: the list (search, category, pages), CSV upload with its row report, CSRF
and roles (viewers look, marketers and admins upload)."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import Role
from rapport.catalog import service
from rapport.catalog.recommend import Item
from rapport.kit.pagination import Page
from rapport.runtime import Runtime
from tests.catalog.dataset import ITEMS, NOW
from tests.catalog.seed import seed_products
from tests.support.tenants import Tenant
from tests.web.ui import csrf_of, ui_login

CSV = b"id,name,category,price,stock\nn1,Napkins,Table,3.5,4\nn2,,Table,x,\nn3,Nap rings,Table,6,0\n"


def _product_ids(html: str) -> list[str]:
    return re.findall(r"<td class=\"nowrap\"><code>([^<]+)</code></td>", html)


def _upload(client: TestClient, csrf: str, data: bytes, name: str = "products.csv") -> httpx.Response:
    return client.post(
        "/data/products/upload",
        data={"csrf_token": csrf},
        files={"file": (name, data, "text/csv")},
        follow_redirects=False,
    )


def test_the_page_needs_a_login(client: TestClient) -> None:
    answer = client.get("/data/products", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/data/products"


def test_a_viewer_browses_searches_and_filters_but_cannot_upload(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    seed_products(runtime, tenant.workspace_id, ITEMS, NOW)
    csrf = ui_login(client, tenant.viewer_email, tenant.password)
    page = client.get("/data/products")
    assert page.status_code == 200
    assert _product_ids(page.text) == ["A", "B", "C", "D", "E", "F", "G", "H"]  # by name
    assert "£10.00" in page.text and "€35.00" in page.text and "out of stock" in page.text
    assert "Only marketers and admins can import products." in page.text and 'type="file"' not in page.text
    assert _product_ids(client.get("/data/products", params={"category": "Shoes"}).text) == ["E", "F", "H"]
    assert _product_ids(client.get("/data/products", params={"q": "fLiP"}).text) == ["F"]
    assert "No product matches." in client.get("/data/products", params={"q": "zzz"}).text
    refused = _upload(client, csrf, CSV)
    assert refused.status_code == 403 and "Your role (viewer) cannot" in refused.text
    with runtime.read_sessions() as db:
        assert service.list_products(db, workspace_id=tenant.workspace_id, page=Page())[1] == 8


def test_pages_of_fifty_keep_the_filters(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    items = [Item(f"K{k:03d}", f"Knife {k:03d}", "Cutlery" if k % 2 else "Other") for k in range(120)]
    seed_products(runtime, tenant.workspace_id, items, NOW)
    ui_login(client, tenant.viewer_email, tenant.password)
    first = client.get("/data/products", params={"category": "Cutlery"}).text
    assert len(_product_ids(first)) == 50 and "60 products match" in first
    assert 'href="/data/products?category=Cutlery&amp;page=2"' in first
    second = client.get("/data/products", params={"category": "Cutlery", "page": 2}).text
    assert _product_ids(second)[0] == "K101" and "?category=Cutlery&amp;page=3" not in second
    assert 'href="/data/products?category=Cutlery"' in second  # back to page 1


def test_an_admin_uploads_a_csv_and_sees_the_refused_rows(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    page = client.get("/data/products")
    assert 'type="file"' in page.text and csrf_of(page.text) == csrf
    answer = _upload(client, csrf, CSV)
    assert answer.status_code == 200, answer.text
    report = answer.text.split('data-testid="import-report"')[1].split("</section>")[0]
    counts = re.sub(
        r"\s+", " ", re.sub(r"<[^>]+>", " ", report.split("import-report__counts")[1].split("</p>")[0])
    )
    assert "3 rows read" in counts and "2 new" in counts and "0 updated" in counts and "1 refused" in counts
    cells = re.findall(r"<tr><td class=\"nowrap\">(\d+)</td><td>(.*?)</td><td>(.*?)</td></tr>", report)
    assert cells == [
        ("3", "<code>name</code>", "is required"),
        ("3", "<code>price</code>", "must be a number, not &#39;x&#39;"),
    ]
    assert _product_ids(answer.text) == ["n3", "n1"]  # by name: "Nap rings" < "Napkins"
    with runtime.read_sessions() as db:
        rings = service.get_product(db, workspace_id=tenant.workspace_id, product_id="n3")
        assert (rings.name, rings.price, rings.stock) == ("Nap rings", 6.0, 0)


def test_a_marketer_may_upload_and_a_bad_file_is_explained(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    with runtime.sessions() as db:
        user = accounts_service.create_user(db, email="m@acme.test", password=tenant.password)
        accounts_service.set_role(
            db, workspace_id=tenant.workspace_id, user_id=user.id, role=Role.MARKETER, actor="t"
        )
        db.commit()
    csrf = ui_login(client, "m@acme.test", tenant.password)
    bad = _upload(client, csrf, b"sku,price\n1,2\n", name="prices.csv")
    assert bad.status_code == 400
    assert (
        "prices.csv: the header line is not usable: no name column (a header named name or title)" in bad.text
    )
    missing = client.post("/data/products/upload", data={"csrf_token": csrf}, follow_redirects=False)
    assert missing.status_code == 400 and "Choose a CSV file to upload." in missing.text
    good = _upload(client, csrf, b"sku,name\n1,One\n")
    assert good.status_code == 200 and "1 new" in re.sub(r"<[^>]+>|\s+", " ", good.text).replace("  ", " ")


def test_an_upload_without_the_csrf_token_is_refused(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    for token in ("", "forged", csrf[:-1]):
        answer = _upload(client, token, CSV)
        assert answer.status_code == 403 and "This form is out of date" in answer.text
    with runtime.read_sessions() as db:
        assert service.list_products(db, workspace_id=tenant.workspace_id, page=Page())[1] == 0


def test_the_empty_page_keeps_the_strict_policy(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    answer = client.get("/data/products")
    assert answer.status_code == 200 and "No products yet." in answer.text
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert not re.search(r"\son[a-z]+=|\sstyle=|<script>|https://", answer.text)
    assert 'aria-current="page">Data<' in answer.text  # the Data section is the active one
