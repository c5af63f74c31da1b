"""The fast verification path agrees with the reference encoding, and falls back when unsure."""

from __future__ import annotations

import datetime as dt
import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from querygate.audit import canonical
from tests.audit.conftest import Log, append, event, tamper, verify

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
    tamper(log.admin_url, "UPDATE querygate.audit_events SET reason = 'x' WHERE seq = 4")
    result = await verify(log)
    assert not result.ok and result.first_bad_seq == 4 and "edited" in (result.problem or "")
    assert result.checked == 3 and result.head_seq == 3
