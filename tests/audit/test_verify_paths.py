"""The fast verification path agrees with the reference encoding, and falls back when unsure."""

from __future__ import annotations

import datetime as dt
import hashlib

import orjson
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from querygate.audit import canonical
from querygate.audit._content import FIELDS
from querygate.audit._verify import _DEEP
from querygate.provision import setup_database
from tests.audit.conftest import UNGUARD, Log, append, event, tamper, verify

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | texts,
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(texts, inner, max_size=3), max_leaves=6)


@settings(max_examples=200)
@given(st.dictionaries(texts, values, max_size=5))
def test_fast_canonical_bytes_equal_the_reference(content: dict[str, object]) -> None:
    fast = orjson.dumps(orjson.loads(orjson.dumps(content)), option=orjson.OPT_SORT_KEYS)
    assert hashlib.sha256(fast).digest() == hashlib.sha256(canonical(content)).digest()


HOSTILE = ['quote " and \\ backslash', "tab\tnew\nline\r", "ünïcödé ✓ 𝄞", "\u2028\u2029\x7f",
           "\x01\x1f control", "json {\"a\": 1}", ""]


@pytest.mark.anyio
async def test_hostile_values_and_huge_numbers_verify(log: Log) -> None:
    events = [event(n, reason=text, actor_email=text or None, function_name=f"f{text}",
                    parameters={text: text, "n": 10**30, "neg": -(2**63), "list": [text, None]},
                    fields={text: "allow"}, context={"on_behalf_of": text},
                    occurred_at=dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC))
              for n, text in enumerate(HOSTILE)]
    await append(log.gateway_url, events)
    result = await verify(log)
    assert result.ok and result.checked == len(HOSTILE)


@pytest.mark.anyio
async def test_an_event_the_fast_path_doubts_does_not_hide_a_later_edit(log: Log) -> None:
    events = [event(n, parameters={"n": 10**30}) if n == 2 else event(n) for n in range(1, 6)]
    await append(log.gateway_url, events)
    tamper(log.admin_url, UNGUARD, "UPDATE querygate.audit_events SET reason = 'x' WHERE seq = 4")
    result = await verify(log)
    assert not result.ok and result.first_bad_seq == 4 and "edited" in (result.problem or "")
    assert result.checked == 3 and result.head_seq == 3


@pytest.mark.anyio
async def test_the_server_renders_what_the_writer_hashed(log: Log) -> None:
    """Sorted columns and the documents' canonical text: the rendering is the hashed encoding,
    so the walk needs no re-encoding for events this version wrote."""
    await append(log.gateway_url, [event(n, parameters={"b": n, "a": [n, {"z": 1, "y": None}]},
                                         context={"on_behalf_of": "ünï \"q\""}) for n in range(1, 4)])
    async with await psycopg.AsyncConnection.connect(log.admin_url) as conn:
        cur = await conn.execute(_DEEP, (0,))
        rows = await cur.fetchall()
    assert len(rows) == 3
    for _seq, content_hash, _prev, _hash, rendered in rows:
        assert hashlib.sha256(rendered.encode()).digest() == bytes(content_hash), rendered


@pytest.mark.anyio
async def test_a_respaced_document_verifies_and_a_changed_one_does_not(log: Log) -> None:
    await append(log.gateway_url, [event(n, parameters={"customer_id": n, "tag": "x"})
                                   for n in range(1, 5)])
    tamper(log.admin_url, UNGUARD, "UPDATE querygate.audit_events SET parameters = "
                                   "'{ \"tag\" : \"x\",  \"customer_id\": 2 }' WHERE seq = 2")
    respaced = await verify(log)
    assert respaced.ok and respaced.checked == 4
    tamper(log.admin_url, "UPDATE querygate.audit_events SET parameters = "
                          "'{\"customer_id\":3,\"tag\":\"y\"}' WHERE seq = 3")
    changed = await verify(log)
    assert not changed.ok and changed.first_bad_seq == 3 and "edited" in (changed.problem or "")


def test_the_walk_renders_every_hashed_field_in_canonical_order() -> None:
    content = event(1).content()
    assert [name for name, _kind in FIELDS] + ["v"] == sorted(content)


@pytest.mark.anyio
async def test_doubtful_events_across_many_batches_lose_no_event(
        log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rechecks run while later fetches are queued: none of their rows may be dropped."""
    monkeypatch.setattr("querygate.audit._verify.BATCH", 3)
    events = [event(n, parameters={"n": 10**30}) if n % 4 == 0 else event(n) for n in range(1, 30)]
    await append(log.gateway_url, events)
    result = await verify(log)
    assert result.ok and result.checked == 29, result.problem
    tamper(log.admin_url, UNGUARD, "UPDATE querygate.audit_events SET reason = 'x' WHERE seq = 22")
    edited = await verify(log)
    assert not edited.ok and edited.first_bad_seq == 22 and edited.checked == 21


@pytest.mark.anyio
async def test_the_fast_walk_runs_while_the_constraint_holds_and_deep_on_demand(log: Log) -> None:
    await append(log.gateway_url, [event(n) for n in range(1, 6)])
    fast = await verify(log)
    assert fast.ok and fast.checked == 5 and fast.walk == "fast" and fast.structure is None
    deep = await verify(log, deep=True)
    assert deep.ok and deep.checked == 5 and deep.walk == "deep" and deep.structure is None
    assert (fast.head_seq, fast.head_hash) == (deep.head_seq, deep.head_hash)


@pytest.mark.anyio
async def test_a_constraint_put_back_not_valid_sends_the_walk_deep(log: Log) -> None:
    """Drop the constraint, edit a field, add the constraint back without checking old rows:
    the constraint is there but vouches for nothing, so the walk hashes every event."""
    await append(log.gateway_url, [event(n) for n in range(1, 6)])
    columns = ", ".join(name for name, _ in FIELDS)
    tamper(log.admin_url, UNGUARD, "UPDATE querygate.audit_events SET actor_email = 'nobody' "
                                   "WHERE seq = 2",
           "ALTER TABLE querygate.audit_events ADD CONSTRAINT audit_events_content CHECK "
           f"(coalesce(querygate.audit_content_hash({columns}) = content_hash, false)) NOT VALID")
    result = await verify(log)
    assert not result.ok and result.first_bad_seq == 2 and "edited" in (result.problem or "")
    assert result.walk == "deep" and "not validated" in (result.structure or "")


@pytest.mark.anyio
async def test_a_changed_function_sends_the_walk_deep(log: Log) -> None:
    """Any change to the function behind the constraint (here one that would pass anything
    with the right hash length) means the constraint no longer vouches for the content."""
    await append(log.gateway_url, [event(n) for n in range(1, 4)])
    arguments = ", ".join(f"{name} {kind}" for name, kind in FIELDS)
    tamper(log.admin_url, f"CREATE OR REPLACE FUNCTION querygate.audit_content_hash({arguments}) "
                          "RETURNS bytea LANGUAGE sql STABLE AS $$ SELECT NULL::bytea $$")
    result = await verify(log)
    assert result.ok and result.checked == 3  # nothing was edited: the deep walk says so
    assert result.walk == "deep" and "was changed" in (result.structure or "")


@pytest.mark.anyio
async def test_a_changed_canonical_type_sends_the_walk_deep_and_setup_puts_it_back(
        log: Log) -> None:
    """The constraint's function renders through querygate.audit_canonical: an owner who drops
    a field from that type (so edits to it would no longer count) leaves a constraint that no
    longer vouches for the content. Verify walks deep; setup restores the type."""
    await append(log.gateway_url, [event(n) for n in range(1, 4)])
    tamper(log.admin_url, "ALTER TYPE querygate.audit_canonical DROP ATTRIBUTE reason")
    result = await verify(log)
    assert result.ok and result.checked == 3 and result.walk == "deep"
    assert "querygate.audit_canonical" in (result.structure or "")
    done = setup_database(log.admin_url)
    assert any("put back querygate.audit_canonical" in line for line in done), done
    await append(log.gateway_url, [event(4)])
    again = await verify(log)
    assert again.ok and again.checked == 4 and again.walk == "fast", again.structure


@pytest.mark.anyio
async def test_setup_again_keeps_an_edited_log_walked_in_full(log: Log) -> None:
    """`querygate setup` puts the constraint back but cannot validate it over an edited row;
    it says so, and verify still names the event."""
    await append(log.gateway_url, [event(n) for n in range(1, 5)])
    tamper(log.admin_url, UNGUARD, "UPDATE querygate.audit_events SET reason = 'x' WHERE seq = 3")
    done = setup_database(log.admin_url)
    assert any("do not hash to their content_hash" in line for line in done), done
    result = await verify(log)
    assert not result.ok and result.first_bad_seq == 3 and "not validated" in (result.structure or "")
