"""Test fixtures: a real PostgreSQL for every test that touches data.

By default the embedded server (the one the demo uses) is started in a
temporary folder; ``QUERYGATE_TEST_DATABASE_URL`` (a superuser URL) runs the
same suite against an external server instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from querygate.demo import start_embedded, stop_embedded


def pytest_configure(config: pytest.Config) -> None:
    """A temporary folder of this run's own: pytest resets the permissions of its shared one at
    every start, which locks the embedded server's user out of another run's data folder."""
    if not config.option.basetemp:
        base = tempfile.mkdtemp(prefix="querygate-tests-")
        config.option.basetemp = base
        config.add_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))


def with_db(url: str, dbname: str, user: str | None = None) -> str:
    """``url`` pointed at another database (and, optionally, another role)."""
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    if user is not None:
        params["user"] = user
        params.pop("password", None)
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser URL on the server under test."""
    external = os.environ.get("QUERYGATE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    data_dir: Path = tmp_path_factory.mktemp("pg") / "data"
    url = start_embedded(data_dir)
    yield url
    stop_embedded(data_dir)


@pytest.fixture
def fresh_db(admin_url: str) -> Iterator[str]:
    """An empty database of its own for one test; dropped afterwards. Yields a superuser URL."""
    name = f"qg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_db(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


from tests.demo_env import client, demo, demo_template, gateway  # noqa: E402, F401
