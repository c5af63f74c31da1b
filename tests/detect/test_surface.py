"""The public surface of querygate.detect, querygate.purpose and querygate.limits."""

from __future__ import annotations

import querygate.detect as detect
import querygate.limits as limits
import querygate.purpose as purpose


def test_public_names_exist_and_live_in_their_package() -> None:
    for package in (detect, limits, purpose):
        for name in package.__all__:
            value = getattr(package, name)
            owner = getattr(value, "__module__", package.__name__)
            # errors live in the one tree (querygate.errors) and are re-exported here
            assert owner.startswith(package.__name__) or owner == "querygate.errors", (
                package.__name__, name)
    assert {"Detector", "DetectorService", "backtest", "import_pgaudit"} <= set(detect.__all__)


def test_every_rule_can_be_disabled_by_name() -> None:
    config = detect.load_config({"disabled_rules": list(detect.RULES)})
    assert not any(config.enabled(rule) for rule in detect.RULES)
