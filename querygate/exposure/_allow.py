"""``exposure.allow`` in querygate.yaml: exposures a reviewer has accepted, each with a reason.

```yaml
exposure:
  allow:
    - {role: postgres, reason: "the cluster's superuser; break-glass only"}
    - {role: billing_batch, column: public.customers.iban, reason: "nightly SEPA export"}
```

A missing ``column`` accepts every column of that role; a column may be a glob
(``public.customers.*``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from querygate.errors import ProjectError
from querygate.project import line_of, unknown_key

KEYS = ("role", "column", "reason")


@dataclass(frozen=True)
class Accepted:
    role: str
    column: str | None
    reason: str

    def covers(self, role: str, column: str) -> bool:
        return role == self.role and (self.column is None or fnmatch.fnmatchcase(column, self.column))


def parse_allow(section: Mapping[str, Any], where: str) -> tuple[Accepted, ...]:
    """The ``exposure:`` section's ``allow`` list; a mistake names its line."""
    for key in section:
        if key != "allow":
            raise ProjectError(unknown_key("exposure", key, ("allow",)), path=where,
                               line=line_of(section, key))
    entries = section.get("allow") or []
    if not isinstance(entries, list):
        raise ProjectError("exposure.allow must be a list of {role, column, reason}",
                           path=where, line=line_of(section, "allow"))
    return tuple(_entry(entry, where, line_of(section, "allow")) for entry in entries)


def _entry(entry: object, where: str, line: int | None) -> Accepted:
    if not isinstance(entry, Mapping):
        raise ProjectError(f"exposure.allow: {entry!r} must be a mapping {{role, column, reason}}",
                           path=where, line=line)
    for key in entry:
        if key not in KEYS:
            raise ProjectError(unknown_key("exposure.allow entry", key, KEYS), path=where,
                               line=line_of(entry, key) or line)
    role, column, reason = entry.get("role"), entry.get("column"), entry.get("reason")
    here = line_of(entry, "role") or line
    if not isinstance(role, str) or not role:
        raise ProjectError("exposure.allow entry needs a role", path=where, line=here)
    if not isinstance(reason, str) or not reason.strip():
        raise ProjectError(f"exposure.allow entry for {role!r} needs a reason", path=where,
                           line=here)
    if column is not None and (not isinstance(column, str) or column.count(".") != 2):
        raise ProjectError(f"exposure.allow: column {column!r} must be schema.table.column",
                           path=where, line=line_of(entry, "column") or here)
    return Accepted(role, column, reason.strip())
