"""Database setup: roles, the querygate schema, and the grants that make the log append-only.

Run once with an administrator's URL (``querygate setup --admin-url …``); it is
idempotent. The schema and every table in it belong to a NOLOGIN owner role;
the gateway's own role may read and append, never change or remove. A NOLOGIN auditor
role may only read the log and the identity directory: grant it to the people who run
``querygate audit`` and ``querygate reports`` (``GRANT querygate_auditor TO alice``).
"""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from querygate import audit
from querygate.adhoc import ADHOC_ROLE, MASKED_SCHEMA

OWNER_ROLE = "querygate_owner"
DEFAULT_GATEWAY_ROLE = "querygate_gateway"
AUDITOR_ROLE = "querygate_auditor"

_ROLE_EXISTS = "SELECT rolsuper FROM pg_roles WHERE rolname = %s"


def url_for(url: str, *, dbname: str | None = None, user: str | None = None) -> str:
    params = conninfo_to_dict(url)
    if dbname is not None:
        params["dbname"] = dbname
    if user is not None:
        params["user"] = user
        params.pop("password", None)
    return make_conninfo("", **params)


PARTS = ("identity", "audit", "limits", "detect")
"""Packages with a ``schema.sql`` (run as the owner role) and a ``grants.sql`` (``{gateway}``
stands for the gateway's role, ``{auditor}`` for the read-only auditor role), applied in this
order."""

_AUDITOR_READS = {
    # What the auditor may read outside its own part's grants.sql, by part: no token hashes.
    "identity": ("GRANT USAGE ON SCHEMA querygate TO {auditor}",
                 "GRANT SELECT ON querygate.users TO {auditor}",
                 "GRANT SELECT (id, user_id, created_at, expires_at, revoked_at) "
                 "ON querygate.tokens TO {auditor}"),
}


def _sql(package: str, name: str) -> str | None:
    resource = resources.files(f"querygate.{package}").joinpath(name)
    return resource.read_text("utf-8") if resource.is_file() else None


def setup_database(
    admin_url: str,
    *,
    gateway_role: str = DEFAULT_GATEWAY_ROLE,
    parts: tuple[str, ...] = PARTS,
    read_schemas: tuple[str, ...] = ("public",),
    auditor_role: str = AUDITOR_ROLE,
) -> list[str]:
    """Create what querygate needs in one database; return what was done, line by line."""
    done: list[str] = []
    with psycopg.connect(admin_url) as conn:
        _ensure_role(conn, OWNER_ROLE, login=False, done=done)
        _ensure_role(conn, auditor_role, login=False, done=done)
        row = conn.execute(_ROLE_EXISTS, (gateway_role,)).fetchone()
        if row is None:
            _ensure_role(conn, gateway_role, login=True, done=done)
        elif row[0]:
            raise psycopg.ProgrammingError(
                f"role {gateway_role} is a superuser: the gateway must run as an ordinary role"
            )
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(OWNER_ROLE)))
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS querygate AUTHORIZATION {}").format(
                sql.Identifier(OWNER_ROLE)
            )
        )
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(OWNER_ROLE)))
        for part in parts:
            ddl = _sql(part, "schema.sql")
            assert ddl is not None, f"querygate.{part} has no schema.sql"
            conn.execute(ddl.encode())
            done.append(f"created or updated the {part} tables in schema querygate")
            if part == "audit":  # the constraint's SQL is generated with the verifier's
                done += audit.install_content_check(conn)
        conn.execute("RESET ROLE")
        done += _prepare_adhoc(conn, gateway_role, read_schemas)
        done += _grant(conn, gateway_role, auditor_role, parts, read_schemas)
    if "audit" in parts:  # after the commit above: its own transaction, appends go on meanwhile
        with psycopg.connect(admin_url) as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(OWNER_ROLE)))
            done += audit.validate_content_check(conn)
    return done


def _prepare_adhoc(conn: psycopg.Connection[object], gateway_role: str,
                   read_schemas: tuple[str, ...]) -> list[str]:
    """The role ad-hoc SQL runs as, which may read nothing but the masked views the gateway
    keeps in schema querygate_masked (it creates them at start from the project's tags)."""
    done: list[str] = []
    _ensure_role(conn, ADHOC_ROLE, login=False, done=done)
    gateway, role = sql.Identifier(gateway_role), sql.Identifier(ADHOC_ROLE)
    statements = [
        sql.SQL("GRANT {} TO {}").format(role, gateway),
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(MASKED_SCHEMA), gateway),
        sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(MASKED_SCHEMA), gateway),
        sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(MASKED_SCHEMA)),
        sql.SQL("REVOKE ALL ON SCHEMA querygate FROM {}").format(role),
    ]
    for schema in read_schemas:
        statements.append(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(
            sql.Identifier(schema), role))
    for statement in statements:
        conn.execute(statement)
        done.append(statement.as_string(conn))
    return done


def _ensure_role(conn: psycopg.Connection[object], role: str, *, login: bool,
                 done: list[str]) -> None:
    if conn.execute(_ROLE_EXISTS, (role,)).fetchone() is not None:
        return
    kind = sql.SQL("LOGIN") if login else sql.SQL("NOLOGIN")
    conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(role), kind))
    done.append(f"CREATE ROLE {role} {'LOGIN' if login else 'NOLOGIN'}")


def _grant(conn: psycopg.Connection[object], role: str, auditor: str, parts: tuple[str, ...],
           read_schemas: tuple[str, ...]) -> list[str]:
    target = sql.Identifier(role).as_string(conn)
    names = {"gateway": target, "auditor": sql.Identifier(auditor).as_string(conn)}
    statements = [f"GRANT USAGE ON SCHEMA querygate TO {target}"]
    for part in parts:
        grants = _sql(part, "grants.sql") or ""
        lines = [line for line in grants.splitlines() if line.strip() and not line.startswith("--")]
        statements += [s.strip().format(**names) for s in " ".join(lines).split(";")
                       if s.strip()]
        statements += [s.format(**names) for s in _AUDITOR_READS.get(part, ())]
    for schema in read_schemas:
        ident = sql.Identifier(schema).as_string(conn)
        statements += [f"GRANT USAGE ON SCHEMA {ident} TO {target}",
                       f"GRANT SELECT ON ALL TABLES IN SCHEMA {ident} TO {target}"]
    for statement in statements:
        conn.execute(statement.encode())
    return statements
