"""The MariaDB (or MySQL) server the `mysql` tests use: HPSEARCH_TEST_MYSQL, a URL of an account
that may create databases and users (default: root on 127.0.0.1:3306, no password, as .ci/run
starts it). Each test gets a database of its own on it (the `mysql_url` fixture), and the accounts
it makes are dropped after it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get("HPSEARCH_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")


def connect(**options) -> pymysql.Connection:
    """A connection to the server, as the test account (in autocommit unless `options` say)."""
    url = make_url(SERVER_URL)
    options = {"autocommit": True, **options}
    return pymysql.connect(
        host=url.host,
        port=url.port or 3306,
        user=url.username,
        password=url.password or "",
        **options,
    )


def execute(*statements: str) -> None:
    with connect() as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def storage_url(database: str, username: str | None = None) -> str:
    """The storage URL of `database` on the test server, as `username` (the test account's when
    None; an account of `account` has no password)."""
    url = make_url(SERVER_URL).set(database=database)
    if username is not None:
        url = url.set(username=username, password=None)
    return url.render_as_string(hide_password=False)


@contextmanager
def account(*grants: str) -> Iterator[str]:
    """A new account of the test server, from 127.0.0.1 with no password, given each of `grants`
    (`SELECT ON db.*`); its name. Dropped after."""
    name = f"hps_{uuid.uuid4().hex[:10]}"
    execute(f"CREATE USER '{name}'@'127.0.0.1'")
    try:
        execute(*(f"GRANT {grant} TO '{name}'@'127.0.0.1'" for grant in grants))
        yield name
    finally:
        execute(f"DROP USER IF EXISTS '{name}'@'127.0.0.1'")
