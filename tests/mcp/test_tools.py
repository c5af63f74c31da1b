"""The result payload an agent reads: caps, markers, and tool errors, without a server."""

from __future__ import annotations

import json

import httpx
import pytest

from querygate import mcp
from querygate.audit import Receipt
from querygate.errors import BadParameters, LimitExceeded, PolicyDenied
from querygate.gateway import CallResult
from querygate.mcp import _tools

RECEIPT = Receipt("00000000-0000-0000-0000-000000000001", 1, "h")


def result(rows: list[list[object]], truncated: bool = False) -> CallResult:
    return CallResult(["id", "note"], rows, {"note": "mask.full"}, truncated, RECEIPT)


def test_a_small_result_is_whole() -> None:
    body = _tools.payload("f", result([[1, "a"], [2, "b"]]))
    assert body["rows"] == [[1, "a"], [2, "b"]] and body["row_count"] == 2
    assert body["truncated"] is False and "notice" not in body
    assert body["fields"] == {"note": "mask.full"} and body["audit_id"] == RECEIPT.event_id


def test_rows_are_cut_to_the_limit_with_a_notice() -> None:
    rows: list[list[object]] = [[i, "x" * 100] for i in range(1000)]
    body = _tools.payload("f", result(rows), limit=10_000)
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    assert len(text) <= 10_000 and 50 < len(body["rows"]) < 1000
    assert body["rows"] == rows[:len(body["rows"])]
    assert body["truncated"] is True and body["row_count"] == 1000
    assert body["notice"].startswith(f"showing {len(body['rows'])} of 1000 rows")


def test_a_long_value_is_cut_and_marked() -> None:
    body = _tools.payload("f", result([[1, "y" * 5000]]))
    value = body["rows"][0][1]
    assert value == "y" * _tools.MAX_CELL_CHARS + "…[cut: 3000 more characters]"
    assert "values longer than 2000 characters are cut" in body["notice"]


def test_the_gateways_own_row_cap_is_said() -> None:
    body = _tools.payload("f", result([[1, "a"]], truncated=True))
    assert body["truncated"] is True and "max_rows" in body["notice"]


@pytest.mark.parametrize(("error", "text", "extra"), [
    (PolicyDenied("not granted", "no role of yours grants f"),
     "403 policy_denied: no role of yours grants f (rule: not granted)", {"rule": "not granted"}),
    (BadParameters("parameter 'x': expected an integer", parameter="x"),
     "422 bad_parameters: parameter 'x': expected an integer", {"parameter": "x"}),
    (LimitExceeded("over the daily limit"), "429 limit_exceeded: over the daily limit", {}),
])
def test_refusals_are_readable_tool_errors(error: Exception, text: str,
                                           extra: dict[str, str]) -> None:
    assert isinstance(error, PolicyDenied | BadParameters | LimitExceeded)
    failed = _tools.failure(error)
    assert failed.is_error is True and failed.content[0].text == text  # type: ignore[union-attr]
    assert failed.structured_content["error"] == {"code": error.code, "message": error.message,
                                                  "status": error.status, **extra}


def test_the_reason_is_taken_out_of_the_arguments() -> None:
    assert _tools.split_arguments(None, {"sql": "SELECT 1", "reason": "T-1"}) == (
        {"sql": "SELECT 1"}, "T-1")
    assert _tools.split_arguments(None, None) == ({}, None)
    with pytest.raises(BadParameters):
        _tools.split_arguments(None, ["not", "an", "object"])  # type: ignore[arg-type]


def test_the_package_promises_what_it_has() -> None:
    assert mcp.__all__ and all(getattr(mcp, name) is not None for name in mcp.__all__)
    assert "never instructions" in mcp.INSTRUCTIONS


@pytest.mark.anyio
async def test_without_the_apps_lifespan_mcp_says_so(client: httpx.AsyncClient) -> None:
    response = await client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 503
    assert "lifespan" in response.json()["error"]["message"]
