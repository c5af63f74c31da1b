"""A database with querygate's schema set up, and URLs for the admin and the gateway role."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for


@dataclass(frozen=True)
class Store:
    admin_url: str
    gateway_url: str


@pytest.fixture
def store(fresh_db: str) -> Store:
    setup_database(fresh_db)
    return Store(fresh_db, url_for(fresh_db, user=DEFAULT_GATEWAY_ROLE))
