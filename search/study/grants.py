"""What a PostgreSQL role may not do to Optuna's tables, asked from the catalog, and the GRANT that
lets it: for writes before any is made (search.study.writable), for reads once the server refused
one (search.study.storage), which it does as Optuna opens the storage and reads its schema version.
Two refusals look like something else and are told apart here: a database the role may not
connect to (the server answers as if it were down, with no SQLSTATE), and a schema it may not use
(PostgreSQL leaves it off the search_path, and its tables look missing). A login refused for its
password or for what the URL asks (sslmode, channel_binding) is named too (`refused_login`), not
taken for a server out of reach.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy

from search.errors import error_chain

# PostgreSQL's SQLSTATE for a statement the role lacks a privilege for
INSUFFICIENT_PRIVILEGE = "42501"

SESSION = sqlalchemy.text(
    "SELECT current_user, current_schema(), current_setting('transaction_read_only')"
)
# Each table of `tables` that exists, and a privilege of `privileges` the role lacks on it, tables
# in order
MISSING_TABLE_PRIVILEGES = sqlalchemy.text("""
SELECT t.name, p.privilege
FROM unnest(CAST(:tables AS text[])) WITH ORDINALITY AS t(name, position)
CROSS JOIN unnest(CAST(:privileges AS text[])) AS p(privilege)
WHERE to_regclass(quote_ident(t.name)) IS NOT NULL
  AND NOT has_table_privilege(to_regclass(quote_ident(t.name)), p.privilege)
ORDER BY t.position
""")
# The server's words for a login refused for want of CONNECT on the database (its DETAIL line): at
# connect time libpq gives no SQLSTATE (42501) to tell it by
NO_CONNECT_PRIVILEGE = "User does not have CONNECT privilege"
# The server's words for a login to a database, or as a role, that it does not have (no SQLSTATE
# at connect time either). It quotes the name as it is, quotes included.
NOT_ON_SERVER = re.compile(r'FATAL:\s+(database|role) "(.*)" does not exist')
# The server's words for a login whose password it rejected: a wrong password, or a role that does
# not exist, which password authentication does not tell apart (no SQLSTATE at connect time)
WRONG_PASSWORD = re.compile(r'FATAL:\s+password authentication failed for user "(.*)"')
# libpq's own words, with no FATAL and no SQLSTATE, for a login it gave up on because of what the
# URL asks: the same on every try, so a worker must not wait them out as an outage
NO_PASSWORD = "fe_sendauth: no password supplied"
NO_SSL = "server does not support SSL, but SSL was required"
NO_CHANNEL_BINDING = "channel binding required"
CLIENT_REFUSALS = (NO_PASSWORD, NO_SSL, NO_CHANNEL_BINDING)
# The schemas named by `path` that exist but that the role may not use, in the path's order, and
# whether each holds a table named `table`: PostgreSQL skips them when it looks a name up
UNUSABLE_SCHEMAS = sqlalchemy.text("""
SELECT n.nspname AS name,
  EXISTS (
    SELECT FROM pg_class AS c
    WHERE c.relnamespace = n.oid AND c.relname = :table AND c.relkind IN ('r', 'p')
  ) AS holds
FROM unnest(CAST(:path AS text[])) WITH ORDINALITY AS p(name, position)
JOIN pg_namespace AS n ON n.nspname = p.name
WHERE NOT has_schema_privilege(n.oid, 'USAGE')
ORDER BY p.position
""")


def lacks_privilege(error: BaseException) -> bool:
    """True where the server refused the role a statement (SQLSTATE 42501), however wrapped: as the
    DBAPIError's .orig by SQLAlchemy, as the __cause__ of Optuna's StorageInternalError."""
    return any(
        # psycopg names it sqlstate, psycopg2 pgcode
        (getattr(link, "sqlstate", None) or getattr(link, "pgcode", None)) == INSUFFICIENT_PRIVILEGE
        for link in error_chain(error)
    )


def refused_read(parsed: sqlalchemy.URL, tables: list[str]) -> str | None:
    """Which of `tables` the role of the PostgreSQL storage at `parsed` may not read, and the fix;
    None when the catalog finds none (the refusal was of something else)."""
    engine = sqlalchemy.create_engine(parsed)
    try:
        with engine.connect() as connection:
            role, schema, _ = connection.execute(SESSION).one()
            missing = connection.execute(
                MISSING_TABLE_PRIVILEGES, {"tables": tables, "privileges": ["SELECT"]}
            ).first()
    finally:
        engine.dispose()
    if missing is None:
        return None
    return (
        f"role {role!r} may not read table {missing.name!r}: grant it `GRANT SELECT ON ALL TABLES "
        f"IN SCHEMA {sql_name(schema)} TO {sql_name(role)}`, or use a role that can read"
    )


def refused_connection(error: BaseException, parsed: sqlalchemy.URL) -> str | None:
    """The server's refusal of a login to a database the role may not connect to, and the GRANT
    that lets it; None for any other failure to connect (a server down, a role that does not
    exist). The role and database are the ones libpq used (psycopg's failed connection tells them,
    defaults and PGUSER included), else those of `parsed`."""
    refusals = [link for link in error_chain(error) if NO_CONNECT_PRIVILEGE in str(link)]
    if not refusals:
        return None
    # psycopg's connection that failed; SQLAlchemy's wrapping of its error has none
    tried: Any = next((link.pgconn for link in refusals if hasattr(link, "pgconn")), None)
    role = _text(getattr(tried, "user", None)) or parsed.username
    database = _text(getattr(tried, "db", None)) or parsed.database
    if role is None or database is None:
        return None
    return (
        f"role {role!r} may not connect to database {database!r}: grant it `GRANT CONNECT ON "
        f"DATABASE {sql_name(database)} TO {sql_name(role)}`, or use a role that can connect"
    )


def client_refused(error: BaseException | None) -> bool:
    """True where libpq gave up on the login for what the URL asks (CLIENT_REFUSALS)."""
    if error is None:
        return False
    return any(words in str(link) for link in error_chain(error) for words in CLIENT_REFUSALS)


def refused_login(error: BaseException, parsed: sqlalchemy.URL) -> str | None:
    """A login the server or libpq refused for its password or its connection settings, in words
    with what to change; None for any other failure to connect."""
    text = " ".join(str(link) for link in error_chain(error))
    wrong = WRONG_PASSWORD.search(text)
    if wrong is not None:
        return (
            f"the server refused the password given for role {wrong.group(1)!r} (a wrong "
            "password, or no such role): fix the user name or password in the URL, "
            "percent-encoding any % @ / in it as %25 %40 %2F"
        )
    if NO_PASSWORD in text:
        role = _login_role(error) or parsed.username
        return (
            f"the server asks role {role!r} for a password and none was given: put it in the "
            "URL (user:password@host), or set PGPASSWORD or a ~/.pgpass line"
        )
    if NO_SSL in text:
        return (
            "the server does not offer SSL, but the URL's sslmode asks for it: drop sslmode "
            "from the URL (or set sslmode=prefer), or turn SSL on at the server"
        )
    if NO_CHANNEL_BINDING in text:
        return (
            "the URL's channel_binding=require needs an SSL connection with a SCRAM password, "
            "which this one is not: drop channel_binding from the URL, or use SSL and SCRAM"
        )
    return None


def _login_role(error: BaseException) -> str | None:
    # The role libpq logged in as (defaults and PGUSER included), where psycopg's error tells it
    connections = (getattr(link, "pgconn", None) for link in error_chain(error))
    tried = next((connection for connection in connections if connection is not None), None)
    return _text(getattr(tried, "user", None))


def not_on_server(error: BaseException) -> str | None:
    """The database or role a login named that the PostgreSQL server does not have, and the
    statement that makes it; None for any other failure to connect. On a server that answers in
    another language, None too: its own words are shown as they are."""
    found = next(
        (match for link in error_chain(error) if (match := NOT_ON_SERVER.search(str(link)))),
        None,
    )
    if found is None:
        return None
    kind, name = found.groups()
    if kind == "database":
        return (
            f"the server has no database {name!r}: create it (`CREATE DATABASE {sql_name(name)}`), "
            "or fix the database name in the URL"
        )
    return (
        f"the server has no role {name!r}: create it (`CREATE ROLE {sql_name(name)} LOGIN`), or "
        "fix the user name in the URL"
    )


def refused_schema(connection: sqlalchemy.Connection, table: str) -> str | None:
    """The schema on the role's search_path that holds `table` but that the role may not use, and
    the GRANT that lets it: without USAGE the schema is off the path, and `table` looks missing.
    None when no such schema holds it, or the database is not PostgreSQL."""
    if connection.dialect.name != "postgresql":
        return None
    role, unusable = _unusable_schemas(connection, table)
    holding = next((schema.name for schema in unusable if schema.holds), None)
    if holding is None:
        return None
    return (
        f"role {role!r} may not use schema {holding!r}, which holds Optuna's tables (they look "
        f"missing to it): grant it `GRANT USAGE ON SCHEMA {sql_name(holding)} TO "
        f"{sql_name(role)}`, or use a role that can"
    )


def refused_new_schema(connection: sqlalchemy.Connection) -> str | None:
    """For a session with no schema to create in (current_schema() is NULL): the first schema on
    the role's search_path that it may not use, where a new storage's tables would go, and the
    GRANT that lets it create them there; None when the path names no such schema."""
    role, unusable = _unusable_schemas(connection, "studies")
    if not unusable:
        return None
    schema = unusable[0].name
    return (
        f"role {role!r} may not use schema {schema!r}, where its search_path puts a new "
        f"storage's tables: grant it `GRANT USAGE, CREATE ON SCHEMA "
        f"{sql_name(schema)} TO {sql_name(role)}`, or use a role that can create tables there"
    )


def _unusable_schemas(
    connection: sqlalchemy.Connection, table: str
) -> tuple[str, list[sqlalchemy.Row]]:
    """The role, and the schemas of its search_path that it may not use (UNUSABLE_SCHEMAS)."""
    role, path = connection.execute(
        sqlalchemy.text("SELECT current_user, current_setting('search_path')")
    ).one()
    found = connection.execute(UNUSABLE_SCHEMAS, {"path": search_path(path, role), "table": table})
    return role, list(found)


def search_path(setting: str, role: str) -> list[str]:
    """The schema names of a search_path setting, as PostgreSQL reads them: a quoted name as it is,
    a plain one in lower case, $user the role."""
    names = []
    for quoted, plain in re.findall(r'"((?:[^"]|"")*)"|([^,\s]+)', setting):
        name = quoted.replace('""', '"') if quoted else plain.lower()
        names.append(role if name == "$user" else name)
    return names


def _text(value: bytes | str | None) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def sql_name(name: str) -> str:
    """`name` as an SQL identifier: as it is when plain, else double-quoted."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
