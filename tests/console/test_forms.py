"""Typed forms: each parameter type's input, and a submitted form as call parameters."""

from __future__ import annotations

import datetime as dt

import pytest

import querygate.console
from querygate.catalog import Parameter, bind
from querygate.console._calls import cell, field_for, form_values
from querygate.console._sessions import SessionStore
from querygate.console._web import parse_moment, parse_subject
from querygate.errors import BadParameters


def test_the_public_surface() -> None:
    assert querygate.console.__all__
    for name in querygate.console.__all__:
        assert getattr(querygate.console, name) is not None


@pytest.mark.parametrize(("type_", "input_", "attr"), [
    ("int", "number", ("max", "2147483647")), ("bigint", "number", ("step", "1")),
    ("numeric", "text", ("inputmode", "decimal")), ("text", "text", ("maxlength", "200")),
    ("bool", "select", None), ("date", "date", None), ("timestamptz", "datetime-local", None),
    ("uuid", "text", ("maxlength", "36")), ("text[]", "text", None)])
def test_each_type_has_its_input(type_: str, input_: str, attr: tuple[str, str] | None) -> None:
    field = field_for(Parameter("x", type_), 200)
    assert field.input == input_ and field.id == "p-x" and field.hint
    if attr is not None:
        assert field.attrs[attr[0]] == attr[1]


def test_a_form_becomes_the_values_the_gateway_binds() -> None:
    params = (Parameter("n", "int"), Parameter("ids", "int[]"), Parameter("at", "timestamptz"),
              Parameter("on", "bool"), Parameter("q", "text"), Parameter("d", "date"))
    values = form_values(params, {"p.n": "42", "p.ids": "1, 2,,3", "p.at": "2026-03-01T09:30",
                                  "p.on": "false", "p.q": "", "p.d": "2026-03-01"})
    assert values == {"n": "42", "ids": ["1", "2", "3"], "at": "2026-03-01T09:30:00Z",
                      "on": "false", "q": "", "d": "2026-03-01"}
    bound = bind(params, values, max_chars=100)
    assert bound["at"] == dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    assert bound["ids"] == [1, 2, 3] and bound["on"] is False and bound["n"] == 42
    assert "n" not in form_values(params, {"p.n": ""})  # the gateway then names it as missing
    assert form_values(params, {"p.at": "2026-03-01T09:30:15+01:00"})["at"] == \
        "2026-03-01T09:30:15+01:00"


def test_cells_subjects_and_dates() -> None:
    assert [cell(None), cell(True), cell(dt.date(2026, 1, 2)), cell(3)] == [
        "NULL", "true", "2026-01-02", "3"]
    assert parse_subject("customer:42") == ("customer", "42") and parse_subject("") is None
    with pytest.raises(BadParameters):
        parse_subject("customer42")
    assert parse_moment("2026-03-01", "to", end=True) == dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    with pytest.raises(BadParameters):
        parse_moment("March", "from")


def test_sessions_end_when_idle_and_are_filed_by_hash() -> None:
    store = SessionStore(idle_s=0.0)
    cookie, session = store.create("qg_token", "a@example.com")
    assert cookie not in repr(store._sessions) and len(store) == 1
    assert store.get(cookie) is None  # idle for longer than 0 s
    store = SessionStore()
    cookie, session = store.create("qg_token", "a@example.com")
    assert store.get(cookie) is session and store.get(cookie + "x") is None
    assert store.end_for("a@example.com") == 1 and store.get(cookie) is None
