"""What a PostgreSQL role may not do to Optuna's tables, asked from the catalog, and the GRANT that
lets it: for writes before any is made (search.study.writable), for reads once the server refused
one (search.study.storage), which it does as Optuna opens the storage and reads its schema version.
"""

from __future__ import annotations

import re

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


def sql_name(name: str) -> str:
    """`name` as an SQL identifier: as it is when plain, else double-quoted."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
