"""``querygate exposure`` against a real database with every grant path, and clean roles that
must not appear."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from querygate.cli import main
from tests.conftest import with_db


@dataclass(frozen=True)
class Setup:
    admin_url: str
    project: Path
    p: str  # the prefix of every role this test made

    def role(self, name: str) -> str:
        return f"{self.p}_{name}"


ROLES = ("grant", "col", "clean", "group", "member", "chain", "noinherit", "readall", "super",
         "bypass", "bypass_only", "owner", "vowner", "viewer", "invoker", "fn", "default", "gw",
         "gw_member", "auditor_like", "part", "creator", "rows", "standby")

SCHEMA = """
CREATE SCHEMA hr;
CREATE TABLE hr.people (id int PRIMARY KEY, name text, ssn text, salary int);
CREATE TABLE hr.open (id int PRIMARY KEY, email text);
CREATE TABLE public.notes (id int, body text);
CREATE TABLE hr.visits (at date NOT NULL, badge text) PARTITION BY RANGE (at);
CREATE TABLE hr.visits_2026 PARTITION OF hr.visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE ROLE {grant} LOGIN PASSWORD 'secret-1';
CREATE ROLE {col} LOGIN;
CREATE ROLE {clean} LOGIN PASSWORD 'secret-2';
CREATE ROLE {group} NOLOGIN;
CREATE ROLE {member} LOGIN INHERIT;
CREATE ROLE {chain} LOGIN;
CREATE ROLE {noinherit} LOGIN NOINHERIT;
CREATE ROLE {readall} LOGIN;
CREATE ROLE {super} SUPERUSER NOLOGIN;
CREATE ROLE {bypass} LOGIN BYPASSRLS;
CREATE ROLE {bypass_only} LOGIN BYPASSRLS;
CREATE ROLE {owner} NOLOGIN;
CREATE ROLE {vowner} NOLOGIN;
CREATE ROLE {viewer} LOGIN;
CREATE ROLE {invoker} LOGIN;
CREATE ROLE {fn} LOGIN;
CREATE ROLE {default} LOGIN;
CREATE ROLE {gw} LOGIN;
CREATE ROLE {gw_member} LOGIN;
CREATE ROLE {auditor_like} LOGIN;
CREATE ROLE {part} LOGIN;
CREATE ROLE {creator} LOGIN CREATEROLE;
CREATE ROLE {rows} LOGIN;
CREATE ROLE {standby} LOGIN REPLICATION;
GRANT SELECT ON hr.visits_2026 TO {part};
ALTER TABLE hr.people OWNER TO {owner};
ALTER TABLE hr.people ENABLE ROW LEVEL SECURITY;
GRANT USAGE ON SCHEMA hr TO PUBLIC;
GRANT SELECT ON hr.people TO {grant};
GRANT SELECT (ssn) ON hr.people TO {col};
GRANT SELECT (id, name) ON hr.people TO {clean};
GRANT SELECT ON public.notes TO {clean};
GRANT SELECT ON hr.people TO {group};
GRANT {group} TO {member};
GRANT {member} TO {chain};
GRANT {group} TO {noinherit};
GRANT pg_read_all_data TO {readall};
GRANT SELECT (salary) ON hr.people TO {bypass};
GRANT SELECT ON hr.people TO {vowner};
CREATE VIEW hr.people_pay AS SELECT id, salary FROM hr.people;
CREATE VIEW hr.people_names AS SELECT id, name FROM hr.people WHERE ssn IS NOT NULL;
CREATE VIEW hr.people_invoker WITH (security_invoker = true) AS SELECT id, ssn FROM hr.people;
ALTER VIEW hr.people_pay OWNER TO {vowner};
ALTER VIEW hr.people_names OWNER TO {vowner};
ALTER VIEW hr.people_invoker OWNER TO {vowner};
CREATE VIEW hr.people_rows AS SELECT row_to_json(p.*) AS person FROM hr.people p;
ALTER VIEW hr.people_rows OWNER TO {vowner};
GRANT SELECT ON hr.people_rows TO {rows};
GRANT SELECT ON hr.people_pay TO {viewer};
GRANT SELECT ON hr.people_names TO {clean};
GRANT SELECT ON hr.people_invoker TO {invoker};
CREATE FUNCTION hr.ssn_of(person int) RETURNS text LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT ssn FROM hr.people WHERE id = person $$;
CREATE FUNCTION hr.headcount() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT count(*) FROM hr.people $$;
ALTER FUNCTION hr.ssn_of(int) OWNER TO {owner};
ALTER FUNCTION hr.headcount() OWNER TO {owner};
REVOKE ALL ON FUNCTION hr.ssn_of(int), hr.headcount() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hr.ssn_of(int) TO {fn};
GRANT EXECUTE ON FUNCTION hr.headcount() TO {clean};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA hr GRANT SELECT ON TABLES TO {default};
ALTER DEFAULT PRIVILEGES FOR ROLE {vowner} GRANT SELECT ON TABLES TO {default};
CREATE FUNCTION hr.pay_of(person int) RETURNS int LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT salary FROM hr.people WHERE id = person $$;
ALTER FUNCTION hr.pay_of(int) OWNER TO {owner};
GRANT EXECUTE ON FUNCTION hr.pay_of(int) TO {fn};
GRANT SELECT ON hr.open TO PUBLIC;
GRANT SELECT ON hr.people TO {gw};
GRANT {gw} TO {gw_member};
"""

PROJECT = """
database:
  url: 'postgresql://{gw}@127.0.0.1/db'
secret_key: 0123456789abcdef0123456789abcdef
classification:
  hr.people:
    subject: person
    columns:
      ssn: [pii.government_id]
      salary: [pii.financial]
  hr.open:
    columns:
      email: [pii.contact]
  hr.visits:
    columns:
      badge: [pii.badge]
  public.notes:
    columns: {{}}
exposure:
  allow:
{allow}
"""


def write_project(folder: Path, setup_roles: dict[str, str], allow: list[str]) -> Path:
    (folder / "queries").mkdir(parents=True, exist_ok=True)
    lines = "\n".join(f"    - {a}" for a in allow) or "    []"
    (folder / "querygate.yaml").write_text(PROJECT.format(gw=setup_roles["gw"], allow=lines))
    return folder


@pytest.fixture
def setup(fresh_db: str, tmp_path: Path) -> Iterator[Setup]:
    prefix = f"x{uuid.uuid4().hex[:6]}"
    names = {r: f"{prefix}_{r}" for r in ROLES}
    idents = {r: sql.Identifier(n).as_string(None) for r, n in names.items()}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(SCHEMA.format(**idents).encode())
    made = Setup(fresh_db, write_project(tmp_path / "project", names, []), prefix)
    yield made
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for name in names.values():  # one at a time: default ACLs of several trip PostgreSQL
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
        every = sql.SQL(", ").join(sql.Identifier(n) for n in names.values())
        conn.execute(sql.SQL("DROP ROLE {}").format(every))


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def exposures(setup: Setup) -> list[dict[str, object]]:
    code, out, err = invoke("exposure", "--admin-url", setup.admin_url, "--json",
                            "--project", str(setup.project))
    assert code == 1, err
    return list(json.loads(out)["exposures"])


def mine(setup: Setup, found: list[dict[str, object]]) -> set[tuple[str, str, str]]:
    """(role without prefix, column, via) for the roles this test made, and PUBLIC."""
    cut = len(setup.p) + 1
    out = set()
    for e in found:
        role, via = str(e["role"]), str(e["via"]).replace(setup.p + "_", "")
        if role.startswith(setup.p + "_"):
            out.add((role[cut:], str(e["column"]), via))
        elif role == "PUBLIC":
            out.add(("PUBLIC", str(e["column"]), via))
    return out


def version(setup: Setup) -> int:
    with psycopg.connect(setup.admin_url) as conn:
        return conn.info.server_version


SSN, PAY, EMAIL, BADGE = ("hr.people.ssn", "hr.people.salary", "hr.open.email",
                          "hr.visits.badge")


def test_every_path_is_reported_with_its_own_via(setup: Setup) -> None:
    found = exposures(setup)
    got = mine(setup, found)
    both = {SSN, PAY}
    expected = (
        {("grant", c, "grant") for c in both}
        | {("col", SSN, "column grant")}
        | {("group", c, "grant") for c in both}
        | {("member", c, "member of group") for c in both}
        | {("chain", c, "member of group") for c in both}
        | {("noinherit", c, "set role group") for c in both}
        | {("readall", c, "pg_read_all_data") for c in (SSN, PAY, EMAIL, BADGE)}
        | {("super", c, "superuser") for c in (SSN, PAY, EMAIL, BADGE)}
        | {("part", BADGE, "grant")}
        | ({("creator", c, "createrole") for c in (SSN, PAY, EMAIL, BADGE)}
           if version(setup) < 160000 else set())  # PostgreSQL 16 took that power away
        | {("bypass", PAY, "column grant"), ("bypass", PAY, "bypassrls")}
        | {("owner", c, "owner") for c in both}
        | {("vowner", c, "grant") for c in both}
        | {("viewer", PAY, "view hr.people_pay owned by vowner")}
        | {("rows", c, "view hr.people_rows owned by vowner") for c in both}
        | {("standby", c, "replication") for c in (SSN, PAY, EMAIL, BADGE)}
        | {("fn", SSN, "security definer hr.ssn_of(integer) owned by owner")}
        | {("fn", PAY, "security definer hr.pay_of(integer) owned by owner")}
        | {("PUBLIC", PAY, "security definer hr.pay_of(integer) owned by owner")}
        | {("default", c, "default privileges") for c in (SSN, PAY, EMAIL, BADGE)}
        | {("gw_member", c, "member of gw") for c in both}
        | {("PUBLIC", EMAIL, "public")}
    )
    assert got == expected
    by_via = {str(e["via"]) for e in found}
    assert len({v.split(" ")[0] for v in by_via}) >= 12  # distinguishable kinds of path
    part = next(e for e in found if e["role"] == setup.role("part"))
    assert str(part["detail"]).startswith("on hr.visits_2026, which holds rows of hr.visits")
    assert part["revoke"] == f'REVOKE SELECT ON "hr"."visits_2026" FROM "{setup.role("part")}";'
    shape = next(e for e in found if e["role"] == setup.role("col"))
    assert shape["tags"] == ["pii.government_id"] and shape["login"] is True
    assert shape["revoke"] == f'REVOKE SELECT ("ssn") ON "hr"."people" FROM "{setup.role("col")}";'


def test_clean_roles_and_the_gateway_are_not_reported(setup: Setup) -> None:
    roles = {str(e["role"]) for e in exposures(setup)}
    clean_ones = ["clean", "bypass_only", "invoker", "auditor_like", "gw"]
    for clean in clean_ones + (["creator"] if version(setup) >= 160000 else []):
        assert setup.role(clean) not in roles, clean
    assert not {"querygate_owner", "querygate_auditor"} & roles


def test_allow_accepts_exposures_and_exit_0_when_all_are(setup: Setup) -> None:
    found = exposures(setup)
    others = sorted({str(e["role"]) for e in found} - {setup.role("grant")})
    allow = [f"{{role: {setup.role('grant')}, column: {SSN}, reason: 'payroll export'}}"]
    allow += [f"{{role: '{r}', reason: 'reviewed'}}" for r in others]
    write_project(setup.project, {"gw": setup.role("gw")}, allow)
    code, out, err = invoke("exposure", "--admin-url", setup.admin_url, "--json",
                            "--project", str(setup.project))
    assert code == 1, err
    left = [e for e in json.loads(out)["exposures"] if not e["accepted"]]
    assert [(e["role"], e["column"]) for e in left] == [(setup.role("grant"), PAY)]
    write_project(setup.project, {"gw": setup.role("gw")},
                  [*allow, f"{{role: {setup.role('grant')}, reason: 'reviewed'}}"])
    code, out, err = invoke("exposure", "--admin-url", setup.admin_url,
                            "--project", str(setup.project))
    assert code == 0, out + err
    assert "0 not accepted" in out


def test_the_plain_report_names_logins_and_suggests_statements(setup: Setup) -> None:
    code, out, _ = invoke("exposure", "--admin-url", setup.admin_url,
                          "--project", str(setup.project))
    assert code == 1
    grant, col = setup.role("grant"), setup.role("col")
    assert f"{grant}: LOGIN, has a password" in out
    assert f"{col}: LOGIN, NO password" in out
    assert f"{setup.role('group')}: cannot log in (NOLOGIN)" in out
    assert f'REVOKE SELECT ON "hr"."people" FROM "{grant}";' in out
    assert f'REVOKE "{setup.role("group")}" FROM "{setup.role("member")}";' in out
    assert f'ALTER ROLE "{setup.role("super")}" NOSUPERUSER;' in out
    assert (f'ALTER DEFAULT PRIVILEGES FOR ROLE "{setup.role("owner")}" IN SCHEMA "hr" REVOKE '
            f'SELECT ON TABLES FROM "{setup.role("default")}";') in out
    assert 'REVOKE SELECT ON "hr"."open" FROM PUBLIC;' in out
    assert f"not reported, by design:\n  {setup.role('gw')}: the gateway's own role" in out
    assert "  querygate_owner: querygate's own, by design" in out


def test_an_ordinary_login_sees_the_paths_but_not_the_passwords(setup: Setup) -> None:
    dbname = str(psycopg.conninfo.conninfo_to_dict(setup.admin_url)["dbname"])
    url = with_db(setup.admin_url, dbname, user=setup.role("auditor_like"))
    code, out, err = invoke("exposure", "--admin-url", url, "--json", "--project",
                            str(setup.project))
    assert code == 1, err
    report = json.loads(out)
    assert mine(setup, report["exposures"]) == mine(setup, exposures(setup))
    roles = {r["role"]: r for r in report["roles"]}
    assert roles[setup.role("grant")]["password"] is None and roles[setup.role("grant")]["hba"] == []


def test_last_connection_from_a_server_log(setup: Setup, tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text(f"2026-03-02 09:15:06.000 UTC [10] {setup.role('col')}@prod app=deploy "
                   "client=10.0.0.9 LOG:  connection authorized: user="
                   f"{setup.role('col')} database=prod application_name=deploy\n")
    code, out, _ = invoke("exposure", "--admin-url", setup.admin_url, "--log", str(log),
                          "--json", "--project", str(setup.project))
    assert code == 1
    roles = {r["role"]: r for r in json.loads(out)["roles"]}
    assert roles[setup.role("col")]["last_connected"] == (
        "last seen in the log 2026-03-02 09:15:06 UTC in prod from 10.0.0.9 (deploy)")
    assert roles[setup.role("grant")]["last_connected"] == "not seen in the log"
    assert roles[setup.role("grant")]["password"] is True
    code, _, err = invoke("exposure", "--admin-url", setup.admin_url, "--log",
                          str(tmp_path / "gone.log"), "--project", str(setup.project))
    assert code == 2 and "cannot read" in err


def test_bad_input_is_exit_2_with_the_problem_named(setup: Setup, tmp_path: Path) -> None:
    project = str(setup.project)
    code, _, err = invoke("exposure", "--admin-url", "postgresql://nobody@127.0.0.1:1/prod",
                          "--project", project)
    assert code == 2 and "error: cannot connect with --admin-url" in err
    code, _, err = invoke("exposure", "--admin-url", "host=127.0.0.1 port", "--project", project)
    assert code == 2 and "--admin-url is not a PostgreSQL URL" in err
    code, _, err = invoke("exposure", "--project", project)
    assert code == 2 and "--admin-url is required" in err
    wrong = with_db(setup.admin_url, "postgres")
    code, _, err = invoke("exposure", "--admin-url", wrong, "--project", project)
    assert code == 2 and "none of the classified columns exists" in err
    write_project(setup.project, {"gw": setup.role("gw")}, ["{role: x}"])
    code, _, err = invoke("exposure", "--admin-url", setup.admin_url, "--project", project)
    assert code == 2 and "exposure.allow entry for 'x' needs a reason" in err
    code, _, err = invoke("exposure", "--admin-url", setup.admin_url, "--project", str(tmp_path))
    assert code == 2 and "no querygate.yaml here" in err
