"""querygate's PostgreSQL front door: psql, GUI clients and drivers, through the one gateway.

``PgServer`` speaks protocol 3.0 (simple and extended queries, TLS, cancel requests) and sends
every statement through ``Gateway.call`` or ``Gateway.sql`` with ``client="postgres"``.
"""

from querygate.pgwire._config import PostgresConfig, is_loopback, postgres_config
from querygate.pgwire._errors import SQLSTATES, sqlstate_of
from querygate.pgwire._server import PgServer

__all__ = [
    "SQLSTATES",
    "PgServer",
    "PostgresConfig",
    "is_loopback",
    "postgres_config",
    "sqlstate_of",
]
