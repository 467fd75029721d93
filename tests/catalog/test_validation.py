"""Pure checks of product rows and CSV headers: every refusal names its row, field and reason."""

from __future__ import annotations

from rapport.catalog.validation import FieldError, api_row, map_headers, row_from_cells, validate_product


def test_headers_map_by_alias_without_case_and_the_rest_become_attributes() -> None:
    header, problems = map_headers(["SKU", "Title", "Image URL", "Price", "Colour", "id"])
    assert problems == [] and header is not None
    # "id" outranks "sku" for product_id; SKU then is just an attribute
    assert header.fields == {"product_id": 5, "name": 1, "image_url": 2, "price": 3}
    assert header.attributes == {"SKU": 0, "Colour": 4}
    raw = row_from_cells(header, ["s1", "Mug", "https://x.test/m.png", "4", "", "m-1"])
    assert raw == {
        "product_id": "m-1",
        "name": "Mug",
        "image_url": "https://x.test/m.png",
        "price": "4",
        "attributes": {"SKU": "s1"},
    }


def test_unusable_headers_are_explained() -> None:
    header, problems = map_headers(["name", "Name", "", "price"])
    assert header is None
    assert problems == [
        "header 'Name' appears twice",
        "column 3 has no header",
        "no product_id column (a header named product_id or id or sku)",
    ]


def test_a_good_row_is_cleaned() -> None:
    fields, errors = validate_product(
        {"product_id": " p1 ", "name": "Mug", "price": "1,299.50", "currency": "eur", "stock": "3.0"}, row=2
    )
    assert errors == [] and fields is not None
    assert (fields.product_id, fields.price, fields.currency, fields.stock) == ("p1", 1299.5, "EUR", 3)
    assert (fields.category, fields.url, fields.attributes) == ("", "", {})
    blank, _ = validate_product(
        {"product_id": "p", "name": "n", "price": "", "stock": "", "currency": ""}, row=3
    )
    assert blank is not None and (blank.price, blank.stock, blank.currency) == (None, None, "GBP")


def test_every_problem_of_a_row_is_reported() -> None:
    fields, errors = validate_product(
        {
            "product_id": "",
            "name": "x" * 401,
            "price": "-1",
            "currency": "EURO",
            "url": "javascript:alert(1)",
            "image_url": "/relative.png",
            "stock": "2.5",
            "attributes": [],
        },
        row=7,
    )
    assert fields is None
    assert errors == [
        FieldError(7, "product_id", "is required"),
        FieldError(7, "name", "is longer than 400 characters"),
        FieldError(7, "price", "must not be negative"),
        FieldError(7, "currency", "'EURO' is not an ISO 4217 currency code"),
        FieldError(7, "url", "must be an absolute http(s) URL"),
        FieldError(7, "image_url", "must be an absolute http(s) URL"),
        FieldError(7, "stock", "must be a whole number"),
        FieldError(7, "attributes", "must be an object"),
    ]
    _, more = validate_product({"product_id": "p", "name": True, "price": "abc", "stock": "-3"}, row=1)
    assert more == [
        FieldError(1, "name", "must be a string"),
        FieldError(1, "price", "must be a number, not 'abc'"),
        FieldError(1, "stock", "must be between 0 and 2147483647"),
    ]


def test_json_objects_use_the_same_aliases_and_keep_unknown_keys_as_attributes() -> None:
    raw = api_row({"id": 12, "title": "Mug", "image": "https://x.test/i.png", "colour": "red",
                   "attributes": {"size": "L"}})  # fmt: skip
    assert raw == {
        "product_id": 12,
        "name": "Mug",
        "image_url": "https://x.test/i.png",
        "attributes": {"colour": "red", "size": "L"},
    }
    fields, errors = validate_product(raw, row=0)
    assert errors == [] and fields is not None and fields.product_id == "12"
