"""What every command shares: the project option, running async work, rendering errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg

from querygate.errors import QuerygateError
from querygate.project import Project, load_project

T = TypeVar("T")

project_option = click.option(
    "--project", "project_dir", type=click.Path(file_okay=False, path_type=Path), default=".",
    show_default=True, help="The project folder (querygate.yaml and queries/).",
)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run async work; a querygate or database error becomes a clear message and exit 1."""
    try:
        return asyncio.run(coro)
    except QuerygateError as exc:
        fail(exc.message)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"cannot reach the database: {first}")
    raise AssertionError("unreachable")


def load(project_dir: Path) -> Project:
    try:
        return load_project(project_dir)
    except QuerygateError as exc:
        fail(exc.message)
    raise AssertionError("unreachable")


def with_connection(url: str, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Run ``work`` on one autocommit connection to ``url``."""

    async def go() -> T:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await work(conn)

    return run(go())


def parse_moment(value: str | None, *, option: str) -> dt.datetime | None:
    """``2026-03-01`` (midnight UTC) or an ISO 8601 timestamp."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 timestamp")
        raise
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def command_help(text: str, example: str) -> str:
    """A command's help text, ending with an example."""
    return f"{text}\n\n\b\nExample:\n  {example}"


def wrap_errors(func: Callable[..., T]) -> Callable[..., T]:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except QuerygateError as exc:
            fail(exc.message)
            raise

    return wrapper
