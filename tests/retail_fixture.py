"""A small store in the shape of tau2-bench's retail database (db.json), for tests that must run without
../shared: two users, four orders in each status that matters, two products."""

from __future__ import annotations

import copy
from typing import Any

ADDRESS = {"address1": "1 Main St", "address2": "Apt 2", "city": "Springfield", "country": "USA", "state": "IL",
           "zip": "10001"}


def _item(product_id: str, name: str, item_id: str, price: float, options: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "product_id": product_id, "item_id": item_id, "price": price, "options": options}


SHIRT_BLUE = _item("1000000001", "T-Shirt", "2000000001", 50.0, {"color": "blue", "size": "M"})
MUG_WHITE = _item("1000000002", "Mug", "3000000001", 10.0, {"color": "white"})

_DB: dict[str, Any] = {
    "products": {
        "1000000001": {"name": "T-Shirt", "product_id": "1000000001", "variants": {
            "2000000001": {"item_id": "2000000001", "options": {"color": "blue", "size": "M"}, "available": True,
                           "price": 50.0},
            "2000000002": {"item_id": "2000000002", "options": {"color": "red", "size": "M"}, "available": True,
                           "price": 55.0},
            "2000000003": {"item_id": "2000000003", "options": {"color": "green", "size": "M"}, "available": False,
                           "price": 45.0}}},
        "1000000002": {"name": "Mug", "product_id": "1000000002", "variants": {
            "3000000001": {"item_id": "3000000001", "options": {"color": "white"}, "available": True, "price": 10.0},
            "3000000002": {"item_id": "3000000002", "options": {"color": "black"}, "available": True,
                           "price": 12.0}}},
    },
    "users": {
        "ann_lee_1": {"user_id": "ann_lee_1", "name": {"first_name": "Ann", "last_name": "Lee"},
                      "address": dict(ADDRESS), "email": "ann.lee@example.com",
                      "payment_methods": {
                          "credit_card_1": {"source": "credit_card", "id": "credit_card_1", "brand": "visa",
                                            "last_four": "1111"},
                          "gift_card_1": {"source": "gift_card", "id": "gift_card_1", "balance": 20.0},
                          "paypal_1": {"source": "paypal", "id": "paypal_1"}},
                      "orders": ["#W0000001", "#W0000002", "#W0000003"]},
        "bob_kay_2": {"user_id": "bob_kay_2", "name": {"first_name": "Bob", "last_name": "Kay"},
                      "address": {**ADDRESS, "zip": "20002"}, "email": "bob.kay@example.com",
                      "payment_methods": {"credit_card_2": {"source": "credit_card", "id": "credit_card_2",
                                                            "brand": "amex", "last_four": "2222"}},
                      "orders": ["#W0000004"]},
    },
    "orders": {
        "#W0000001": {"order_id": "#W0000001", "user_id": "ann_lee_1", "address": dict(ADDRESS),
                      "items": [dict(SHIRT_BLUE), dict(MUG_WHITE)], "status": "pending", "fulfillments": [],
                      "payment_history": [{"transaction_type": "payment", "amount": 60.0,
                                           "payment_method_id": "credit_card_1"}]},
        "#W0000002": {"order_id": "#W0000002", "user_id": "ann_lee_1", "address": dict(ADDRESS),
                      "items": [dict(SHIRT_BLUE), dict(SHIRT_BLUE)], "status": "delivered",
                      "fulfillments": [{"tracking_id": ["111"], "item_ids": ["2000000001", "2000000001"]}],
                      "payment_history": [{"transaction_type": "payment", "amount": 100.0,
                                           "payment_method_id": "paypal_1"}]},
        "#W0000003": {"order_id": "#W0000003", "user_id": "ann_lee_1", "address": dict(ADDRESS),
                      "items": [dict(MUG_WHITE)], "status": "processed", "fulfillments": [],
                      "payment_history": [{"transaction_type": "payment", "amount": 10.0,
                                           "payment_method_id": "gift_card_1"}]},
        "#W0000004": {"order_id": "#W0000004", "user_id": "bob_kay_2", "address": {**ADDRESS, "zip": "20002"},
                      "items": [dict(MUG_WHITE)], "status": "pending", "fulfillments": [],
                      "payment_history": [{"transaction_type": "payment", "amount": 10.0,
                                           "payment_method_id": "credit_card_2"}]},
    },
}


def small_retail_db() -> dict[str, Any]:
    """A fresh copy of the small store."""
    return copy.deepcopy(_DB)
