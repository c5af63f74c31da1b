"""`check` reads purpose:, limits:, detect:, alerts:, identity: and checkpoints: with the parsers
serve runs.

Each case edits the demo project's querygate.yaml the way a person would get it
wrong, runs `querygate check` against the demo database, and asserts the message
and its line; serve's parsers must stop at the same message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from querygate.audit import CheckpointConfig
from querygate.cli import main
from querygate.detect import RULES, load_settings
from querygate.errors import ProjectError, QuerygateError
from querygate.gateway import build_guards
from querygate.identity import identity_settings
from querygate.project import load_project
from tests.demo_env import Demo

runner = CliRunner()
Edit = tuple[str, str]

PURPOSE_SQL = "SELECT t.customer_id::text FROM support_tickets t"
SUPPORT_PURPOSE = "      mode: warn\n      alert: each\n"
SUPPORT_REASON = 'requires_reason: {pattern: "^TICKET-[0-9]+$", mode: warn}'
ALERTS = "# roles that may list and acknowledge alerts\n"  # the end of the alerts: section
DETECT = "  warmup_replay_days: 45"


def edited(demo: Demo, folder: Path, *edits: Edit) -> Path:
    """A copy of the demo project with each (old, new) replaced once in querygate.yaml."""
    target = folder / "project"
    shutil.copytree(demo.project_dir, target)
    config = target / "querygate.yaml"
    text = config.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    config.write_text(text)
    return target


def line_of(project: Path, text: str) -> int:
    """The line of querygate.yaml that holds ``text``."""
    lines = (project / "querygate.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def check(project: Path, *flags: str) -> tuple[int, str]:
    """Exit code and standard output of `querygate check`."""
    result = runner.invoke(main, ["check", *flags, "--project", str(project)])
    return result.exit_code, result.stdout


def serve_refusal(project: Path) -> str:
    """The message serve stops at: its guards, then its detector (querygate.cli._workers)."""
    loaded = load_project(project)
    with pytest.raises(ProjectError) as caught:
        build_guards(loaded)
        load_settings(loaded)
    return caught.value.message


CASES: list[tuple[str, list[Edit], str, str]] = [
    ("check_key", [("    describe: an open", "    descripton: an open")],
     "purpose check 'open_ticket': unknown key 'descripton'; did you mean 'describe'? "
     "(known: subject, describe, sql)", "descripton:"),
    ("subject_type", [("    subject: customer\n    describe", "    subject: custmer\n    describe")],
     "purpose check 'open_ticket': subject 'custmer' is not a subject type any table declares; "
     "did you mean 'customer'? (declared: customer; a table declares one under classification "
     "with subject: or subject_ref:)", "subject: custmer"),
    ("check_name", [("      check: open_ticket", "      check: open_tickets")],
     "role 'support' purpose names check 'open_tickets', which is not declared; did you mean "
     "'open_ticket'? (checks: open_ticket)", "check: open_tickets"),
    ("purpose_key", [(SUPPORT_PURPOSE, "      mode: warn\n      alerts: each\n")],
     "role 'support' purpose: unknown key 'alerts'; did you mean 'alert'? "
     "(known: check, mode, alert, functions)", "alerts: each"),
    ("purpose_mode", [(SUPPORT_PURPOSE, "      mode: warning\n      alert: each\n")],
     "role 'support' purpose: mode must be one of off, warn, enforce, not 'warning'; "
     "did you mean 'warn'?", "mode: warning"),
    ("reason_mode", [(SUPPORT_REASON, SUPPORT_REASON.replace("warn", "enforced"))],
     "role 'support' requires_reason: mode must be one of off, warn, enforce, not 'enforced'; "
     "did you mean 'enforce'?", "enforced"),
    ("reason_pattern", [(SUPPORT_REASON, SUPPORT_REASON.replace("[0-9]", "[0-9"))],
     "role 'support' requires_reason: '^TICKET-[0-9+$' is not a regular expression "
     "(unterminated character set at position 8); write one such as ^TICKET-[0-9]+$, with \\ "
     "before ( [ + * ? to match them as they are", "TICKET-[0-9+$"),
    ("purpose_function_missing",
     [("functions: [get_customer_by_id, list", "functions: [get_customer_by_idd, list")],
     "role 'support' purpose: functions names 'get_customer_by_idd', which matches no function "
     "in queries/; did you mean 'get_customer_by_id'?", "functions: [get_customer_by_idd"),
    ("purpose_function_not_granted",
     [("functions: [get_customer_by_id, list", "functions: [revenue_by_plan, list")],
     "role 'support' purpose: functions names 'revenue_by_plan', which matches no function the "
     "role grants (role 'support' grants: get_customer_by_id, search_*, get_order_by_id, "
     "list_customer_orders, list_open_tickets_for, get_ticket, list_customer_tickets); grant it "
     "under the role's functions:, or leave it out here", "functions: [revenue_by_plan"),
    ("limit_kind", [(ALERTS, ALERTS + "limits:\n  default: {calls_per_minit: 60}\n")],
     "limits.default: unknown limit 'calls_per_minit'; did you mean 'calls_per_minute'? (known: "
     "calls_per_minute, calls_per_hour, calls_per_day, subjects_per_day, subjects_per_30_days)",
     "calls_per_minit"),
    ("limit_not_positive",
     [("    purpose:\n      check", "    limits:\n      subjects_per_day: 0\n    purpose:\n      check")],
     "role 'support' limits.subjects_per_day must be a positive whole number, not 0",
     "subjects_per_day: 0"),
    ("limits_key", [(ALERTS, ALERTS + "limits:\n  defaults: {calls_per_minute: 60}\n")],
     "limits: unknown key 'defaults'; did you mean 'default'? "
     "(known: mode, default, users, functions)", "defaults:"),
    ("limits_mode", [(ALERTS, ALERTS + "limits:\n  mode: enforcing\n")],
     "limits.mode must be enforce or warn, not 'enforcing'; did you mean 'enforce'?",
     "mode: enforcing"),
    ("limited_function", [(ALERTS, ALERTS + "limits:\n  functions:\n"
                                            "    serch_customers: {calls_per_hour: 30}\n")],
     "limits.functions: 'serch_customers' matches no function in queries/; did you mean "
     "'search_customers'?", "serch_customers"),
    ("detect_setting", [(DETECT, "  warmup_replay_dys: 45")],
     "detect: unknown setting 'warmup_replay_dys'; did you mean 'warmup_replay_days'?",
     "warmup_replay_dys"),
    ("detect_type", [(DETECT, DETECT + "\n  spike_floor: lots")],
     "detect.spike_floor must be a non-negative whole number (default 60), not 'lots'",
     "spike_floor"),
    ("detect_whole", [(DETECT, DETECT + "\n  warmup_days: 2.5")],
     "detect.warmup_days must be a non-negative whole number (default 7), not 2.5",
     "warmup_days"),
    ("detect_enabled", [("  enabled: true ", "  enabled: sometimes ")],
     "detect.enabled must be true or false, not 'sometimes'", "enabled: sometimes"),
    ("disabled_rule", [(DETECT, DETECT + "\n  disabled_rules: [volume.spike, access.unusal]")],
     "detect.disabled_rules: 'access.unusal' is not a rule; did you mean 'access.unusual'? "
     f"(rules: {', '.join(RULES)})",
     "disabled_rules"),
    ("alerts_key", [(ALERTS, ALERTS + "  suspend: high\n")],
     "alerts: unknown key 'suspend'; did you mean 'suspend_on'? "
     "(known: reviewers, webhook, suspend_on, suspend_except)", "suspend: high"),
    ("webhook_url", [(ALERTS, ALERTS + "  webhook: {min_severity: high}\n")],
     "alerts.webhook needs url: (a Slack-compatible incoming webhook; use $env:NAME for a "
     "secret URL)", "webhook:"),
    ("webhook_key", [(ALERTS, ALERTS + "  webhook: {url: 'https://hooks.example.test/x', "
                                       "min_severity: high, retries: 3}\n")],
     "alerts.webhook: unknown key 'retries' (known: url, min_severity, max_attempts, timeout_s, "
     "backoff_s)", "webhook:"),
    ("suspend_on", [(ALERTS, ALERTS + "  suspend_on: critical\n")],
     "alerts.suspend_on must be one of low, medium, high, not 'critical'", "suspend_on"),
]


@pytest.mark.parametrize(("edits", "message", "marker"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_check_names_the_mistake_and_serve_agrees(demo: Demo, tmp_path: Path, edits: list[Edit],
                                                  message: str, marker: str) -> None:
    project = edited(demo, tmp_path, *edits)
    code, output = check(project, "--json")
    assert code == 1
    report = json.loads(output)
    where = f"{project / 'querygate.yaml'}:{line_of(project, marker)}"
    assert report["problems"] == [{"file": where, "message": message}]
    assert serve_refusal(project) == f"{where}: {message}"


@pytest.mark.parametrize(("sql", "message"), [
    (PURPOSE_SQL.replace("support_tickets", "support_ticket"),
     'PostgreSQL cannot prepare its sql (SQLSTATE 42P01): relation "support_ticket" does not '
     "exist"),
    (PURPOSE_SQL.replace("t.customer_id::text", "t.customer"),
     "PostgreSQL cannot prepare its sql (SQLSTATE 42703): column t.customer does not exist"),
])
def test_check_prepares_purpose_sql_against_the_database(demo: Demo, tmp_path: Path, sql: str,
                                                         message: str) -> None:
    project = edited(demo, tmp_path, (PURPOSE_SQL, sql))
    code, output = check(project)
    assert code == 1
    assert f"PROBLEM: {project / 'querygate.yaml'}:{line_of(project, 'sql: |')}: purpose check " \
           f"'open_ticket': {message}" in output.splitlines()
    load_settings(load_project(project))  # serve starts: the SQL fails only on the first call
    build_guards(load_project(project))


def test_check_binds_the_values_the_guard_binds(demo: Demo, tmp_path: Path) -> None:
    """:reason IS NULL fails on every call (its type is unknown); check says so up front."""
    project = edited(demo, tmp_path, ("AND t.status IN", "AND (:reason IS NULL OR t.status IN"),
                     ("'pending')\n", "'pending'))\n"))
    code, output = check(project, "--json")
    assert code == 1
    [problem] = json.loads(output)["problems"]
    assert problem["message"] == (
        "purpose check 'open_ticket': PostgreSQL cannot prepare its sql (SQLSTATE 42P18): could "
        "not determine data type of parameter $3")


def test_every_mistake_is_reported_at_once_in_the_order_of_lines(demo: Demo,
                                                                 tmp_path: Path) -> None:
    project = edited(demo, tmp_path, (PURPOSE_SQL, PURPOSE_SQL.replace("tickets", "ticket")),
                     (DETECT, "  warmup_replay_dys: 45"),
                     (ALERTS, ALERTS + "  suspend_on: critical\nlimits:\n  mode: enforcing\n"),
                     (SUPPORT_PURPOSE, "      mode: warning\n      alert: each\n"))
    code, output = check(project)
    assert code == 1
    found = [line for line in output.splitlines() if line.startswith("PROBLEM: ")]
    assert [p.split(": ", 2)[1].rpartition(":")[2] for p in found] == [
        str(line_of(project, marker)) for marker in
        ("sql: |", "warmup_replay_dys", "suspend_on", "mode: enforcing", "mode: warning")]
    assert "function get_customer_by_id" in output  # the plan is still printed


def test_a_section_that_is_not_a_mapping_is_refused(demo: Demo, tmp_path: Path) -> None:
    """`detect: false` would otherwise be read as no settings: the detector would still run."""
    block = "".join(f"  {line}\n" for line in (
        "enabled: true           # the insider detector follows the audit log (docs/detection.md)",
        "warmup_replay_days: 45  # days of the log replayed at start to rebuild baselines"))
    project = edited(demo, tmp_path, ("detect:\n" + block, "detect: false\n"))
    result = runner.invoke(main, ["check", "--project", str(project)])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {project / 'querygate.yaml'}:{line_of(project, 'detect: false')}: detect: must "
        "be a mapping of settings, not False; to turn the detector off, write "
        "detect: {enabled: false}")


def test_the_demo_project_checks_clean(demo: Demo) -> None:
    code, output = check(demo.project_dir, "--json")
    assert code == 0, output
    assert json.loads(output)["problems"] == []
    code, output = check(demo.project_dir)
    assert code == 0 and "PROBLEM" not in output


SECTION_CASES: list[tuple[str, str, str, str]] = [
    ("checkpoints_key", "checkpoints:\n  evry_s: 60\n",
     "unknown setting checkpoints.evry_s; known: every_s, folder, partitions_ahead, private_key, "
     "public_key, s3", "checkpoints:"),
    ("checkpoints_every", "checkpoints:\n  every_s: soon\n",
     "checkpoints.every_s must be a number of seconds (0: off)", "checkpoints:"),
    ("identity_key", "identity:\n  odic: {issuer: 'https://id.example.test'}\n",
     "identity.odic: unknown key 'odic'; known keys: oidc, scim, access, admins", "odic:"),
]


@pytest.mark.parametrize(("added", "message", "marker"), [c[1:] for c in SECTION_CASES],
                         ids=[c[0] for c in SECTION_CASES])
def test_check_reads_identity_and_checkpoints_as_serve_does(demo: Demo, tmp_path: Path,
                                                            added: str, message: str,
                                                            marker: str) -> None:
    project = edited(demo, tmp_path, (ALERTS, ALERTS + added))
    code, output = check(project, "--json")
    assert code == 1
    where = project / "querygate.yaml"
    assert json.loads(output)["problems"] == [
        {"file": f"{where}:{line_of(project, marker)}", "message": message}]
    loaded = load_project(project)
    with pytest.raises(QuerygateError) as caught:  # what serve stops at
        identity_settings(loaded)
        CheckpointConfig.from_project(loaded)
    assert caught.value.message.endswith(f": {message}")
