"""``detect backtest``: the detector over exported events, alerts out as they are raised."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

from querygate.detect._alert import Alert
from querygate.detect._config import DetectConfig
from querygate.detect._detector import Detector
from querygate.detect._event import event_from_json
from querygate.detect._watch import Lists
from querygate.errors import EventError


def read_events(lines: Iterable[bytes | str]) -> Iterator[tuple[int, object]]:
    """(line number, parsed JSON) for every non-blank line; EventError names a bad line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError:
            raise EventError(f"line {number}: not a JSON object") from None


def unattributed(obj: dict[str, object]) -> bool:
    """An exported refusal of an unknown token: ``denied`` with no actor and no subjects."""
    return obj.get("actor_id") is None and obj.get("decision") == "denied" \
        and not obj.get("subjects")


def backtest(lines: Iterable[bytes | str], config: DetectConfig | None = None,
             detector: Detector | None = None, *, lists: Lists | None = None) -> Iterator[Alert]:
    """Every alert the detector raises over JSONL events given in time order; ``lists``:
    watched subjects and relationships, from files (backtest has no database)."""
    detector = detector or Detector(config, lists)
    for number, obj in read_events(lines):
        if not isinstance(obj, dict):
            raise EventError(f"line {number}: not a JSON object")
        if unattributed(obj):
            continue  # a refused unknown token: no person to judge
        try:
            event = event_from_json(obj)
        except EventError as exc:
            raise EventError(f"line {number}: {exc}") from None
        yield from detector.feed(event)
