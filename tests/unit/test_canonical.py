"""The canonical encoding that is hashed: stable, and sensitive to every field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querygate.audit import AuditEvent, canonical
from querygate.audit._event import canonical_parts

json_scalars = st.none() | st.booleans() | st.integers() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)

events = st.builds(
    AuditEvent,
    occurred_at=st.datetimes(timezones=st.just(dt.UTC)),
    function_name=st.text(min_size=1),
    decision=st.sampled_from(["allowed", "denied", "error"]),
    actor_id=st.none() | st.text(),
    actor_email=st.none() | st.text(),
    actor_roles=st.lists(st.text()).map(tuple),
    parameters=st.dictionaries(st.text(), json_values, max_size=3),
    reason=st.none() | st.text(),
    rows_returned=st.integers(min_value=0, max_value=10**6),
    fields=st.dictionaries(st.text(), st.text(), max_size=3),
    subjects=st.lists(st.tuples(st.text(), st.text()), max_size=3).map(tuple),
    duration_us=st.integers(min_value=0, max_value=10**9),
    event_id=st.uuids(),
)


@given(events)
def test_same_event_same_bytes(event: AuditEvent) -> None:
    copy = dataclasses.replace(event, parameters=dict(reversed(list(event.parameters.items()))))
    assert canonical(event.content()) == canonical(copy.content())


@given(events, st.sampled_from(["function_name", "decision", "actor_email", "reason",
                                "rows_returned", "duration_us", "occurred_at", "event_id"]))
def test_any_change_changes_the_hash(event: AuditEvent, name: str) -> None:
    value = getattr(event, name)
    if name == "occurred_at":
        changed = value + dt.timedelta(microseconds=1)
    elif name == "event_id":
        changed = uuid.uuid4()
    elif name == "decision":
        changed = "error" if value != "error" else "allowed"
    elif isinstance(value, int):
        changed = value + 1
    else:
        changed = (value or "") + "x"
    assert event.content_hash() != dataclasses.replace(event, **{name: changed}).content_hash()


def test_floats_are_refused() -> None:
    event = AuditEvent(occurred_at=dt.datetime.now(dt.UTC), function_name="f",
                       decision="allowed", parameters={"x": 1.5})
    with pytest.raises(TypeError, match="floats"):
        event.content_hash()


json_documents = st.dictionaries(st.text(), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20), max_size=6)


@given(json_documents)
def test_the_fast_encoding_is_the_reference_encoding(document: dict[str, object]) -> None:
    from querygate.audit._event import _reference

    try:
        reference = _reference(document)
    except UnicodeEncodeError:  # lone surrogates: neither encoding accepts them
        with pytest.raises((TypeError, UnicodeEncodeError)):
            canonical(document)
        return
    assert canonical(document) == reference


@given(events, st.integers(min_value=2**64, max_value=2**80))
def test_the_parts_the_store_sends_are_the_canonical_encoding(event: AuditEvent,
                                                              huge: int) -> None:
    """The writer encodes the four documents once and embeds them: the whole must be the
    same bytes as ``canonical``, integers past 64 bits included (in a document or outside)."""
    for one in (event, dataclasses.replace(event, parameters={**event.parameters, "n": huge}),
                dataclasses.replace(event, rows_returned=huge)):
        content = one.content()
        whole, documents = canonical_parts(content)
        assert whole == canonical(content)
        assert documents == {name: canonical({name: content[name]})[len(name) + 4:-1]
                             for name in documents}
