"""Decisions, their order, masks and plans."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querygate.errors import PolicyDenied
from querygate.policy import MASK_FUNCTIONS, ORDER, ColumnSpec, Role, plan

KEY = b"k" * 32

support = Role("support", ("get_customer", "search_*"),
               {"pii.contact": "allow", "pii.financial": "mask.last4",
                "pii.government_id": "omit", "pii.birthdate": "mask.year"})
billing = Role("billing", ("*",), {"pii.financial": "allow"})
strict = Role("strict", ("get_customer",), {"pii.government_id": "deny"})

COLUMNS = (
    ColumnSpec("id", frozenset({"public.customers.id"}), (), "customer"),
    ColumnSpec("email", frozenset({"public.customers.email"}), ("pii.contact",)),
    ColumnSpec("iban", frozenset({"public.customers.iban"}), ("pii.financial",)),
    ColumnSpec("ssn", frozenset({"public.customers.ssn"}), ("pii.government_id",)),
    ColumnSpec("date_of_birth", frozenset({"public.customers.date_of_birth"}), ("pii.birthdate",)),
)
ROW = (42, "ada@example.net", "DE89370400440532013000", "999-42-4242", dt.date(1984, 5, 1))


def test_support_sees_iban_last4_and_no_ssn() -> None:
    p = plan("get_customer", COLUMNS, {}, [support])
    assert p.allowed
    assert p.fields == {"iban": "mask.last4", "ssn": "omit", "date_of_birth": "mask.year"}
    assert p.apply([ROW], KEY) == [[42, "ada@example.net", "****3000", 1984]]
    assert [COLUMNS[i].name for i in p.visible()] == ["id", "email", "iban", "date_of_birth"]


def test_unmentioned_tag_is_never_clear() -> None:
    p = plan("get_customer", COLUMNS, {}, [billing])
    assert p.decisions["email"] == "mask.full"
    assert p.decisions["iban"] == "allow"
    assert p.apply([ROW], KEY)[0][1] == "****"


def test_roles_combine_to_the_most_permissive() -> None:
    p = plan("get_customer", COLUMNS, {}, [support, billing])
    assert p.decisions["iban"] == "allow"
    assert p.decisions["email"] == "allow"
    assert p.decisions["ssn"] == "mask.full"  # billing does not mention it: masked, not omitted


def test_several_tags_take_the_most_restrictive() -> None:
    both = ColumnSpec("x", frozenset({"a.b.c", "a.b.d"}), ("pii.contact", "pii.government_id"))
    assert plan("get_customer", (both,), {}, [support]).decisions["x"] == "omit"


def test_deny_refuses_the_call_with_the_rule() -> None:
    p = plan("get_customer", COLUMNS, {}, [strict])
    assert not p.allowed
    with pytest.raises(PolicyDenied) as caught:
        p.ensure_allowed()
    assert caught.value.rule == "strict: pii.government_id → deny"
    assert caught.value.status == 403


def test_not_granted() -> None:
    p = plan("drop_everything", COLUMNS, {}, [support])
    assert not p.allowed
    assert p.refusal is not None and p.refusal.rule == "not granted"


def test_filtering_on_a_column_the_caller_may_not_see_is_refused() -> None:
    filters = {"public.customers.ssn": ("pii.government_id",)}
    p = plan("search_by_ssn", (COLUMNS[0],), filters, [support])
    assert p.refusal is not None
    assert "public.customers.ssn" in p.refusal.reason
    assert plan("search_by_email", (COLUMNS[0],), {"public.customers.email": ("pii.contact",)},
                [support]).allowed
    matcher = Role("matcher", ("*",), {"pii.government_id": "match"})
    allowed = plan("search_by_ssn", COLUMNS[:1] + COLUMNS[3:4], filters, [matcher])
    assert allowed.allowed and allowed.decisions["ssn"] == "mask.full"


@pytest.mark.parametrize(
    ("mask", "value", "expected"),
    [
        ("mask.full", "secret", "****"),
        ("mask.last4", "DE89370400440532013000", "****3000"),
        ("mask.last4", "123", "****"),
        ("mask.email", "ada.lovelace@example.net", "a***@example.net"),
        ("mask.email", "not-an-email", "****"),
        ("mask.year", dt.date(1984, 5, 1), 1984),
        ("mask.year", "1984-05-01", 1984),
        ("mask.null", "x", None),
        ("mask.last4", None, None),
    ],
)
def test_masks(mask: str, value: object, expected: object) -> None:
    assert MASK_FUNCTIONS[mask](value, KEY) == expected


@given(st.text(min_size=1), st.text(min_size=1))
def test_hash_mask_is_stable_keyed_and_hides_the_value(a: str, b: str) -> None:
    h = MASK_FUNCTIONS["mask.hash"]
    assert h(a, KEY) == h(a, KEY)
    assert (h(a, KEY) == h(b, KEY)) == (a == b)
    assert h(a, KEY) != h(a, b"other-key" * 4)
    assert len(a) < 8 or a not in str(h(a, KEY))


@given(st.lists(st.sampled_from(ORDER), min_size=1, max_size=4))
def test_order_is_total(decisions: list[str]) -> None:
    role = Role("r", ("*",), {f"t{i}": d for i, d in enumerate(decisions)})
    tags = tuple(f"t{i}" for i in range(len(decisions)))
    got = plan("f", (ColumnSpec("c", frozenset({"a.b.c"}), tags),), {}, [role])
    worst = max(decisions, key=ORDER.index)
    if worst == "deny":
        assert not got.allowed
    else:
        assert got.columns[0].verdict.decision == worst
