"""Whether a storage takes this process's writes, asked before anything is written.

A PostgreSQL role that may read but not write, a server that takes no writes (a standby, a role
with default_transaction_read_only), a SQLite file that is read-only here: each fails only at its
first write, as Optuna's "invalid data in the commit, e.g. exceeding max length", after `run` has
decoded the data or `report` has written its page. Asked first, with nothing written: PostgreSQL
from its catalog (privileges and the session's read-only setting), SQLite by a write statement
that touches no row, rolled back. A gRPC proxy writes as its own server's role and is not asked;
nor is MySQL, whose refused writes still fail as they come.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import optuna
import sqlalchemy

from search.errors import StorageError
from search.study import mysql
from search.study.grants import (
    MISSING_TABLE_PRIVILEGES,
    SESSION,
    refused_new_schema,
    sql_name,
)
from search.study.integrity import is_read_only, sqlite_file
from search.study.optuna_compat import database_behind, optuna_tables
from search.study.storage import check_storage_url
from search.url_secrets import masked
from trainer.naming import named

# Optuna writes new rows and sets attributes again: what a role needs on its tables (no DELETE)
WRITE_PRIVILEGES = ("INSERT", "UPDATE")
# Where report and export attach what they found: the study's note and its report's artifact entry
NOTE_TABLES = ("study_system_attributes",)

# The sequences that number the rows of `tables` (serial or identity columns) the role may not use:
# an INSERT that draws an id needs them as much as the table. CASE, because the planner may ask
# has_sequence_privilege of a table's other dependents (its TOAST table) before the join drops them.
_MISSING_SEQUENCE_PRIVILEGES = sqlalchemy.text("""
SELECT dependent.relname
FROM pg_depend AS link
JOIN pg_class AS dependent ON dependent.oid = link.objid
WHERE link.classid = 'pg_class'::regclass AND link.refclassid = 'pg_class'::regclass
  AND link.refobjid = ANY(ARRAY(
    SELECT to_regclass(quote_ident(name)) FROM unnest(CAST(:tables AS text[])) AS name))
  AND CASE WHEN dependent.relkind = 'S'
    THEN NOT has_sequence_privilege(dependent.oid, 'USAGE') ELSE false END
ORDER BY dependent.relname
""")
_CREATE_IN_SCHEMA = sqlalchemy.text(
    "SELECT current_schema() IS NULL OR has_schema_privilege(current_schema(), 'CREATE')"
)


def check_writable(storage: optuna.storages.BaseStorage, url: str) -> None:
    """Refuse, in one line, a storage that would refuse a worker's writes (StorageError)."""
    reason = refused_write(storage)
    if reason is not None:
        raise StorageError(
            f"storage {masked(url)} refuses writes, and a worker records every trial there: "
            f"{reason}"
        )


def refused_write(
    storage: optuna.storages.BaseStorage, tables: Sequence[str] | None = None
) -> str | None:
    """Why `storage` would refuse writes to `tables` (every table of Optuna's when None): who may
    not write what, and the fix. None when it takes them, or cannot be asked."""
    database = database_behind(storage)
    if not isinstance(database, optuna.storages.RDBStorage):
        return None
    engine = database.engine
    if engine.dialect.name == "postgresql":
        return _postgres_refusal(engine, list(tables or optuna_tables()))
    if engine.dialect.name in ("mysql", "mariadb"):
        return _mysql_refusal(engine, list(tables or optuna_tables()))
    path = sqlite_file(engine.url)
    if path is not None:
        return _sqlite_refusal(engine, path)
    return None


def check_may_create(url: str) -> None:
    """Refuse, in one line, a new storage this process could not create Optuna's tables in: asked
    before `run` decodes the data for a study in an empty database."""
    parsed = check_storage_url(url)
    # A SQLite file is made where its folder is (checked with the URL). MySQL's privilege to create
    # is not asked: its grants may name the database by a pattern, or come through a role, and a
    # wrong guess would refuse a user that may; its refusal comes as the tables are made, before
    # anything else is written.
    if not parsed.drivername.startswith("postgresql"):
        return
    engine = sqlalchemy.create_engine(parsed)
    try:
        with engine.connect() as connection:
            role, schema, read_only = connection.execute(SESSION).one()
            may_create = connection.execute(_CREATE_IN_SCHEMA).scalar_one()
            # No schema to create in: the path's schemas are missing, or this role may not use them
            unusable = refused_new_schema(connection) if schema is None else None
    finally:
        engine.dispose()
    if read_only == "on":
        reason = _read_only_session(role)
    elif unusable is not None:
        reason = unusable
    elif not may_create:
        reason = (
            f"role {role!r} may not create tables in schema {schema!r}, where a new storage "
            f"holds Optuna's: grant it `GRANT CREATE ON SCHEMA {sql_name(schema)} TO "
            f"{sql_name(role)}`, or use a role that can create tables there"
        )
    else:
        return
    raise StorageError(f"storage {masked(url)} refuses writes: {reason}")


def _postgres_refusal(engine: sqlalchemy.Engine, tables: list[str]) -> str | None:
    with engine.connect() as connection:
        role, schema, read_only = connection.execute(SESSION).one()
        if read_only == "on":
            return _read_only_session(role)
        missing = connection.execute(
            MISSING_TABLE_PRIVILEGES, {"tables": tables, "privileges": list(WRITE_PRIVILEGES)}
        ).first()
        sequence = connection.execute(_MISSING_SEQUENCE_PRIVILEGES, {"tables": tables}).first()
    if missing is not None:
        what = f"{missing.privilege} into table {missing.name!r}"
        if missing.privilege == "UPDATE":
            what = f"UPDATE table {missing.name!r}"
    elif sequence is not None:
        what = f"use sequence {sequence.relname!r}, which numbers a table's new rows"
    else:
        return None
    return (
        f"role {role!r} may not {what}: grant it `GRANT {', '.join(WRITE_PRIVILEGES)} ON ALL "
        f"TABLES IN SCHEMA {sql_name(schema)} TO {sql_name(role)}` and `GRANT USAGE ON ALL "
        f"SEQUENCES IN SCHEMA {sql_name(schema)} TO {sql_name(role)}`, or use a role that can "
        "write"
    )


def _read_only_session(role: str) -> str:
    return (
        f"the server takes no writes from role {role!r} (transaction_read_only is on: a standby, "
        "or default_transaction_read_only set for the role or database); point "
        f"{named('storage')} at the primary, or use a role that can write"
    )


def _mysql_refusal(engine: sqlalchemy.Engine, tables: list[str]) -> str | None:
    """An INSERT and an UPDATE of each table that touch no row, rolled back: MySQL refuses them
    as it would real ones, for a privilege the account lacks or a server that takes no writes."""
    with engine.connect() as connection:
        inspector = sqlalchemy.inspect(connection)
        quote = connection.dialect.identifier_preparer.quote
        present = set(inspector.get_table_names())
        try:
            for name in (name for name in tables if name in present):
                table, column = quote(name), quote(inspector.get_columns(name)[0]["name"])
                connection.execute(
                    sqlalchemy.text(f"INSERT INTO {table} SELECT * FROM {table} WHERE 1 = 0")
                )
                connection.execute(
                    sqlalchemy.text(f"UPDATE {table} SET {column} = {column} WHERE 1 = 0")
                )
        except sqlalchemy.exc.DBAPIError as error:
            denied = mysql.refusal(error)
            if denied is None:
                raise
            return mysql.refused(denied, engine.url)
        finally:
            connection.rollback()
    return None


def _sqlite_refusal(engine: sqlalchemy.Engine, path: Path) -> str | None:
    """A write that touches no row, rolled back: SQLite refuses it as it would a real one, on a
    file (or folder) this process may not write, however it got so (permissions, an immutable
    file, a read-only mount). Nothing else is told apart: a file that cannot be written at all
    has no finer reason."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.execute("UPDATE studies SET study_name = study_name WHERE 0")
        finally:
            cursor.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        if not is_read_only(error):
            raise
        if engine.url.query.get("mode") == "ro":  # the URL's own choice: no permission to change
            return (
                f"SQLite file {path} is opened read-only by its URL (mode=ro): leave mode=ro out "
                "of the URL for a command that writes"
            )
        return (
            f"SQLite file {path} is read-only for this process ({error}): make the file and its "
            "folder writable for this user, or work on a copy"
        )
    finally:
        connection.close()
    return None
