"""The PostgreSQL server the `postgres` tests use: HPSEARCH_TEST_POSTGRES, a libpq URL of a role
that may create and drop databases (default: root on 127.0.0.1:5432, trust auth, as .ci/run
starts it). Each test gets a database of its own on it (the `pg_url` fixture)."""

from __future__ import annotations

import os

import psycopg
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get("HPSEARCH_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres")


def connect(**options) -> psycopg.Connection:
    """A connection to the server's maintenance database, as the test role."""
    return psycopg.connect(SERVER_URL, **options)


def server_url(**parts: str) -> str:
    """The test server's URL with `parts` (username=, database=, drivername=) replaced."""
    return make_url(SERVER_URL).set(**parts).render_as_string(hide_password=False)


def storage_url(database: str) -> str:
    """The storage URL (SQLAlchemy, psycopg 3) of `database` on the test server."""
    return server_url(drivername="postgresql+psycopg", database=database)
