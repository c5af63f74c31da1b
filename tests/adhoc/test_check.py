"""``check`` shows a reviewer what ad-hoc SQL may read, before any gateway starts."""

from __future__ import annotations

import json

from click.testing import CliRunner

from querygate.cli import main
from tests.adhoc.conftest import RedTeam


def test_check_lists_the_masked_views_and_grants_of_ad_hoc_sql(redteam: RedTeam) -> None:
    result = CliRunner().invoke(main, ["check", "--json", "--project", str(redteam.project)])
    report = json.loads(result.output)
    adhoc = report["adhoc"]
    assert adhoc["roles"] == ["analyst", "matcher", "hasher"]
    assert adhoc["database_role"] == "querygate_adhoc"
    staff = adhoc["views"]["public.staff"]
    # salary: deny for the analyst, omit for the hasher, unmentioned (mask.full) for the matcher
    assert "salary" not in staff and "salary#mask.full" in staff
    assert {"ssn#mask.full", "ssn#match", "ssn#mask.hash", "iban#mask.last4", "iban"} <= set(staff)
    assert 'GRANT SELECT ON querygate_masked."public.staff" TO querygate_adhoc' in adhoc["grants"]
    text = CliRunner().invoke(main, ["check", "--project", str(redteam.project)]).output
    assert "ad-hoc SQL (roles analyst, matcher, hasher) runs as querygate_adhoc" in text
