"""The catalogue API on both databases: upsert, batch, CSV upload, list, get, delete, scopes, and a
profile's recommendations."""

from __future__ import annotations

from fastapi.testclient import TestClient

from rapport.accounts import service as accounts_service
from rapport.runtime import Runtime
from tests.catalog.dataset import ITEMS, NOW, purchases
from tests.catalog.seed import seed_products, seed_profiles, seed_purchases
from tests.support.tenants import Tenant

MUG = {
    "product_id": "p1",
    "name": "Mug",
    "category": "Kitchen",
    "price": 4.5,
    "url": "https://shop.test/p1",
    "image": "https://shop.test/p1.png",
    "stock": 3,
    "colour": "red",
}


def _key(runtime: Runtime, tenant: Tenant, scopes: list[str]) -> dict[str, str]:
    with runtime.sessions() as db:
        issued = accounts_service.create_key(
            db, workspace_id=tenant.workspace_id, kind="secret", name="k", scopes=scopes, actor="test"
        )
        db.commit()
    return {"Authorization": f"Bearer {issued.plain}"}


def test_upsert_creates_then_replaces(client: TestClient, tenant: Tenant) -> None:
    h = tenant.secret_headers
    created = client.post("/api/v1/products", json=MUG, headers=h)
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("product_id", "name", "price", "currency", "image_url", "stock", "attributes")} == {
        "product_id": "p1", "name": "Mug", "price": 4.5, "currency": "GBP",
        "image_url": "https://shop.test/p1.png", "stock": 3, "attributes": {"colour": "red"},
    }  # fmt: skip
    replaced = client.post(
        "/api/v1/products", json={"product_id": "p1", "name": "Mug 2", "stock": 0}, headers=h
    )
    assert replaced.status_code == 200, replaced.text
    got = client.get("/api/v1/products/p1", headers=h).json()
    assert (got["name"], got["price"], got["stock"], got["url"], got["attributes"]) == (
        "Mug 2",
        None,
        0,
        "",
        {},
    )
    assert got["created_at"] == body["created_at"]


def test_a_bad_product_is_refused_with_field_errors(client: TestClient, tenant: Tenant) -> None:
    answer = client.post(
        "/api/v1/products", json={"id": "p", "price": "x", "url": "nope"}, headers=tenant.secret_headers
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "validation_failed" and error["message"] == "name: is required"
    assert error["details"] == [
        {"row": 0, "field": "name", "reason": "is required"},
        {"row": 0, "field": "price", "reason": "must be a number, not 'x'"},
        {"row": 0, "field": "url", "reason": "must be an absolute http(s) URL"},
    ]
    assert client.get("/api/v1/products/p", headers=tenant.secret_headers).status_code == 404


def test_batch_keeps_the_good_products_and_reports_the_bad_by_index(
    client: TestClient, tenant: Tenant
) -> None:
    h = tenant.secret_headers
    client.post("/api/v1/products", json=MUG, headers=h)
    batch = [
        {"sku": "p2", "name": "Plate", "category": "Kitchen", "price": 7},
        {"product_id": "p3", "name": "", "stock": -1},
        "not an object",
        {"product_id": "p1", "name": "Mug", "price": 5},
    ]
    answer = client.post("/api/v1/products/batch", json={"products": batch}, headers=h)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "rows": 4, "imported": 2, "created": 1, "updated": 1, "refused": 2, "errors_truncated": False,
        "errors": [
            {"row": 1, "field": "name", "reason": "is required"},
            {"row": 1, "field": "stock", "reason": "must be between 0 and 2147483647"},
            {"row": 2, "field": "", "reason": "must be an object"},
        ],
    }  # fmt: skip
    too_many = client.post("/api/v1/products/batch", json={"products": [{}] * 1001}, headers=h)
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "validation_failed"


def test_csv_upload_reports_rows(client: TestClient, tenant: Tenant) -> None:
    csv = b"id,name,price\na,Apple,1\nb,,2\nc,Cherry,x\n"
    answer = client.post(
        "/api/v1/products/import", files={"file": ("p.csv", csv, "text/csv")}, headers=tenant.secret_headers
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["rows"], report["created"], report["refused"]) == (3, 1, 2)
    assert report["errors"] == [
        {"row": 3, "field": "name", "reason": "is required"},
        {"row": 4, "field": "price", "reason": "must be a number, not 'x'"},
    ]
    bad = client.post(
        "/api/v1/products/import",
        files={"file": ("p.csv", b"sku\n1\n", "text/csv")},
        headers=tenant.secret_headers,
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_header"


def test_list_search_filter_paginate_and_delete(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    seed_products(runtime, tenant.workspace_id, ITEMS, NOW)
    h = tenant.secret_headers
    page = client.get("/api/v1/products", params={"limit": 3, "offset": 3}, headers=h).json()
    assert page["total"] == 8 and [p["name"] for p in page["products"]] == [
        "Dish",
        "Espadrilles",
        "Flip-flops",
    ]
    shoes = client.get("/api/v1/products", params={"category": "Shoes"}, headers=h).json()
    assert [p["product_id"] for p in shoes["products"]] == ["E", "F", "H"]
    found = client.get("/api/v1/products", params={"q": "BOO"}, headers=h).json()
    assert [p["product_id"] for p in found["products"]] == ["H"]
    literal = client.get("/api/v1/products", params={"q": "%"}, headers=h).json()
    assert literal["total"] == 0
    out = client.get("/api/v1/products", params={"in_stock": "false"}, headers=h).json()
    assert [p["product_id"] for p in out["products"]] == ["G"]
    assert client.get("/api/v1/product-categories", headers=h).json() == ["Kitchen", "Shoes"]
    gone = client.delete("/api/v1/products/G", headers=h)
    assert gone.status_code == 200 and gone.json()["name"] == "Grater"
    assert client.get("/api/v1/products/G", headers=h).status_code == 404
    assert client.delete("/api/v1/products/G", headers=h).status_code == 404


def test_scopes_and_write_keys(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    reader = _key(runtime, tenant, ["campaigns:read"])
    assert client.get("/api/v1/products", headers=reader).status_code == 200
    refused = client.post("/api/v1/products", json=MUG, headers=reader)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "missing_scope"
    assert client.get("/api/v1/products", headers=tenant.write_headers).status_code == 403
    assert client.get("/api/v1/products").status_code == 401


def test_a_profiles_recommendations(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    ids = seed_profiles(runtime, tenant.workspace_id, 8)
    seed_products(runtime, tenant.workspace_id, ITEMS, NOW)
    seed_purchases(runtime, tenant.workspace_id, purchases({c: ids[c - 1] for c in range(1, 8)}))
    h = tenant.secret_headers
    answer = client.get(f"/api/v1/profiles/{ids[4]}/recommendations", params={"limit": 4}, headers=h)
    assert answer.status_code == 200, answer.text
    assert [(p["product_id"], p["reason"]) for p in answer.json()] == [
        ("C", "bought_together"), ("B", "bought_together"), ("D", "popular_in_category"), ("E", "popular"),
    ]  # fmt: skip
    default = client.get(f"/api/v1/profiles/{ids[4]}/recommendations", headers=h).json()
    assert [p["product_id"] for p in default] == ["C", "B", "D"]
    assert client.get("/api/v1/profiles/999999/recommendations", headers=h).status_code == 404
    assert client.get(f"/api/v1/profiles/{ids[4]}/recommendations?limit=0", headers=h).status_code == 400
    no_profiles = _key(runtime, tenant, ["campaigns:read"])
    assert client.get(f"/api/v1/profiles/{ids[4]}/recommendations", headers=no_profiles).status_code == 403
