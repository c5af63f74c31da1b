"""Append, checkpoint, tamper and verify in any order on a real database (Hypothesis).

Bounded on purpose (few examples, short runs) so it takes seconds; each tampering is done by a
superuser with the append-only triggers switched off, and verify must name the first bad event
exactly, or pass when nothing was touched (or nothing that a checkpoint can tell).
"""

from __future__ import annotations

import asyncio
import shutil

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from tests.audit.conftest import UNGUARD, Log, append, checkpoint, event, guard, tamper, verify

GENESIS_HEX = "00" * 32


class LogMachine(RuleBasedStateMachine):
    log: Log

    def __init__(self) -> None:
        super().__init__()
        self.size = 0
        self.signed: list[int] = []
        self.expected_bad: int | None = None
        self.tampered = False
        self.unguarded = False  # the content constraint was dropped to edit a field
        self._reset()

    def _reset(self) -> None:
        """Empty the log as a superuser would (the test's events all sit in the default
        partitions): unprotect, empty, protect again."""
        with psycopg.connect(self.log.admin_url, autocommit=True) as conn:
            for table in ("querygate.audit_events_default", "querygate.audit_subjects_default"):
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                conn.execute(f"TRUNCATE {table}")
                conn.execute("SELECT querygate.audit_protect(%s::regclass)", (table,))
            conn.execute(f"UPDATE querygate.audit_head SET seq = 0, hash = '\\x{GENESIS_HEX}'")
        shutil.rmtree(self.log.config.folder, ignore_errors=True)
        guard(self.log.admin_url)

    @precondition(lambda self: not self.tampered)
    @rule(count=st.integers(1, 4))
    def append(self, count: int) -> None:
        asyncio.run(append(self.log.gateway_url, [event(self.size + n) for n in range(count)]))
        self.size += count

    @precondition(lambda self: not self.tampered)
    @rule()
    def checkpoint(self) -> None:
        asyncio.run(checkpoint(self.log))
        self.signed.append(self.size)

    @precondition(lambda self: not self.tampered and self.size >= 1)
    @rule(data=st.data())
    def edit_a_field(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(1, self.size))
        tamper(self.log.admin_url, UNGUARD,
               f"UPDATE querygate.audit_events SET rows_returned = 99 WHERE seq = {seq}")
        self.tampered, self.expected_bad, self.unguarded = True, seq, True

    @precondition(lambda self: not self.tampered and self.size >= 1)
    @rule(data=st.data())
    def try_to_edit_with_the_constraint_in_place(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(1, self.size))
        with pytest.raises(psycopg.errors.CheckViolation, match="audit_events_content"):
            tamper(self.log.admin_url,
                   f"UPDATE querygate.audit_events SET actor_email = 'x' WHERE seq = {seq}")

    @precondition(lambda self: not self.tampered and self.size >= 3)
    @rule(data=st.data())
    def delete_a_middle_row(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(2, self.size - 1))
        tamper(self.log.admin_url, f"DELETE FROM querygate.audit_events WHERE seq = {seq}")
        self.tampered, self.expected_bad = True, seq + 1

    @precondition(lambda self: not self.tampered and self.size >= 2)
    @rule(data=st.data())
    def swap_two_rows(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(1, self.size - 1))
        tamper(self.log.admin_url,
               f"UPDATE querygate.audit_events SET seq = -1 WHERE seq = {seq}",
               f"UPDATE querygate.audit_events SET seq = {seq} WHERE seq = {seq + 1}",
               f"UPDATE querygate.audit_events SET seq = {seq + 1} WHERE seq = -1")
        self.tampered, self.expected_bad = True, seq

    @precondition(lambda self: not self.tampered and self.size >= 2)
    @rule(data=st.data())
    def truncate_the_tail(self, data: st.DataObject) -> None:
        keep = data.draw(st.integers(1, self.size - 1))
        tamper(self.log.admin_url,
               f"DELETE FROM querygate.audit_events WHERE seq > {keep}",
               "UPDATE querygate.audit_head SET seq = e.seq, hash = e.hash FROM "
               f"querygate.audit_events e WHERE e.seq = {keep}")
        self.tampered, self.size = True, keep
        self.expected_bad = keep + 1 if any(size > keep for size in self.signed) else None

    @rule()
    def verify(self) -> None:
        result = asyncio.run(verify(self.log))
        assert result.ok == (self.expected_bad is None), result
        if self.expected_bad is not None:
            assert result.first_bad_seq == self.expected_bad, result
            assert (result.structure is not None) == self.unguarded, result
        else:
            assert result.walk == "fast" and result.structure is None, result
            assert result.checked == self.size
            assert result.checkpoints == len(self.signed)

    def teardown(self) -> None:
        self.verify()


def test_append_checkpoint_tamper_verify(log: Log) -> None:
    LogMachine.log = log
    run_state_machine_as_test(LogMachine, settings=settings(
        max_examples=10, stateful_step_count=7, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
