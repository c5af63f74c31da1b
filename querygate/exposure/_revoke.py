"""The statement that would close one exposure, composed with ``psycopg.sql`` and only ever
printed: ``querygate exposure`` never changes the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:
    from querygate.exposure._catalog import Column


ATTRIBUTES = {"superuser": "NOSUPERUSER", "bypassrls": "NOBYPASSRLS",
              "createrole": "NOCREATEROLE", "replication": "NOREPLICATION"}


def _role(name: str) -> sql.Composable:
    return sql.SQL("PUBLIC") if name == "PUBLIC" else sql.Identifier(name)


def _table(col: Column) -> sql.Composable:
    return sql.Identifier(col.schema, col.relname)


def suggestion(kind: str, col: Column | None, role: str, *, scope: str = "table",
               first: str = "", creator: str = "", schema: str | None = None,
               name: str = "") -> str:
    """The suggested statement for an exposure of ``kind``; ``scope`` says whether a PUBLIC
    grant is on the table or the column, ``first`` is a membership chain's first role."""
    statement = _statement(kind, col, role, scope=scope, first=first, creator=creator,
                           schema=schema, name=name).as_string(None)
    return statement if statement.startswith("--") else statement + ";"


def _statement(kind: str, col: Column | None, role: str, *, scope: str, first: str,
               creator: str, schema: str | None, name: str) -> sql.Composable:
    who = _role(role)
    if kind in ATTRIBUTES:
        return sql.SQL("ALTER ROLE {} {}").format(who, sql.SQL(ATTRIBUTES[kind]))
    if kind == "member":
        return sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(first), who)
    if kind == "view":
        return sql.SQL("REVOKE SELECT ON {} FROM {}").format(sql.Identifier(schema or "", name),
                                                            who)
    if kind == "function":  # the signature is PostgreSQL's own regprocedure text
        return sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM {}").format(sql.SQL(name), who)
    if kind == "default privileges":
        where = sql.SQL(" IN SCHEMA {}").format(sql.Identifier(schema)) if schema else sql.SQL("")
        return sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {}{} REVOKE SELECT ON TABLES FROM {}"
                       ).format(sql.Identifier(creator), where, who)
    assert col is not None
    if kind == "owner":  # which role should own it is the reader's call: a comment, not SQL
        return sql.SQL("-- {} owns {}: make a NOLOGIN role own it (ALTER TABLE {} OWNER TO …)"
                       ).format(who, _table(col), _table(col))
    if kind == "column grant" or (kind == "public" and scope == "column"):
        return sql.SQL("REVOKE SELECT ({}) ON {} FROM {}").format(sql.Identifier(col.name),
                                                                 _table(col), who)
    return sql.SQL("REVOKE SELECT ON {} FROM {}").format(_table(col), who)
