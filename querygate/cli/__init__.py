"""The ``querygate`` command line.

Every command is listed in ``COMMANDS`` below, by the module that defines it; a module here is
named after the command it holds (``_audit.py`` is ``querygate audit``), and the others are
shared helpers (``_common``, ``_starter``, ``_workers``, ``_detecting``, ``_perimeter``).
"""

from __future__ import annotations

import click

from querygate.cli import (
    _access,
    _alerts,
    _audit,
    _call,
    _check,
    _detect,
    _exposure,
    _identity,
    _mcp,
    _reconcile,
    _reports,
    _serve,
)

COMMANDS: tuple[click.Command, ...] = (
    _serve.demo, _serve.init, _serve.setup, _serve.serve,     # run it
    _check.check,                                              # review a project
    _call.call, _call.sql, _mcp.mcp,                           # call a running gateway
    _identity.users, _identity.tokens,                         # the directory
    _access.access, _access.break_glass, _access.login,        # elevation and sign-in
    _audit.audit_group,                                        # the log
    _reports.reports_group,                                    # compliance reports
    _alerts.alerts, _detect.detect, _detect.import_group,      # the insider detector
    _exposure.exposure,                                        # paths around the gateway
)
AUDIT_COMMANDS: tuple[click.Command, ...] = (_reconcile.reconcile_command,)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="querygate")
def main() -> None:
    """querygate: a policy gateway in front of production PostgreSQL.

    People call named, typed functions as themselves; field policies mask what
    they may not see; every call is audited before any data leaves.

    \b
    Start here:
      querygate demo                     # a sample database, users and the API
      querygate check --project DIR      # the plan a reviewer reads
    """


for _command in COMMANDS:
    main.add_command(_command)
for _command in AUDIT_COMMANDS:
    _audit.audit_group.add_command(_command)

__all__ = ["AUDIT_COMMANDS", "COMMANDS", "main"]
