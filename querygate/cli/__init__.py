"""The ``querygate`` command line.

More commands come from modules named ``_cmd_*.py`` in this package, each with
a ``COMMANDS`` list of click commands or groups.
"""

from __future__ import annotations

import click

from querygate._plugins import modules
from querygate.cli._audit import audit_group
from querygate.cli._call import call, sql
from querygate.cli._check import check
from querygate.cli._identity import tokens, users
from querygate.cli._serve import demo, init, serve, setup


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


main.add_command(demo)
main.add_command(init)
main.add_command(setup)
main.add_command(serve)
main.add_command(check)
main.add_command(call)
main.add_command(sql)
main.add_command(users)
main.add_command(tokens)
main.add_command(audit_group, name="audit")
for _module in modules("querygate.cli", "_cmd_"):
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]
