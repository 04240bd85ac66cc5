"""MySQL and MariaDB storages: which of their errors an outage is, which a refusal, and the GRANT
that lifts a refusal.

Their drivers (PyMySQL, mysqlclient) give no SQLSTATE class to tell these apart by, as psycopg
does, but the server's or the client's error number, first in the error's args. A server that is
down, restarting or gone mid-query is waited for; a login, a database or a statement it refuses is
one line at once, as on PostgreSQL (search.study.grants).
"""

from __future__ import annotations

import re
import socket

import sqlalchemy

from search.errors import StorageError, error_chain
from trainer.naming import named

DRIVERS = ("pymysql", "MySQLdb")  # the modules their errors come from

# The client's 2002/2003 (no server at the socket or port), 2005 (a host name not resolved yet, as
# while a cluster's database service starts), 2006/2013/2055 (the server gone mid-query); the
# server's 1040 (too many connections), 1053 (shutting down), 1205/1213 (a lock wait timed out, a
# deadlock rolled back: tried again, it runs through), 1927/4031 (a connection it killed)
OUTAGES = frozenset({1040, 1053, 1205, 1213, 1927, 2002, 2003, 2005, 2006, 2013, 2055, 4031})
# The server's 1044 (a login to a database the account has no privilege on), 1142 (a statement on a
# table denied)
DATABASE_REFUSED = 1044
PRIVILEGE_REFUSALS = frozenset({DATABASE_REFUSED, 1142})
UNKNOWN_DATABASE = 1049  # a login to a database the server does not have
# A login refused: 1045 for a wrong password or an account the server does not have for this host
# (it does not say which), 1698 MariaDB's for an account that may not log in so (no password, or
# unix_socket authentication over TCP)
LOGIN_REFUSALS = frozenset({1045, 1698})
# A server or a transaction that takes no writes: --read-only (1290), a read-only transaction
# (1792), a replica's super_read_only (1836)
READ_ONLY = frozenset({1290, 1792, 1836})
WRITE_GRANT = "SELECT, INSERT, UPDATE"  # Optuna adds rows and sets them again, deleting none
CREATE_GRANT = "CREATE, ALTER, INDEX, REFERENCES"  # Optuna's tables, indexes, foreign keys


def is_mysql(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] in DRIVERS


def error_number(error: BaseException | None) -> int | None:
    """The MySQL error number of a PyMySQL or mysqlclient error; None for any other error."""
    if error is None or not is_mysql(error) or not error.args:
        return None
    number = error.args[0]
    return number if isinstance(number, int) else None


def is_outage(driver_error: BaseException | None) -> bool:
    return error_number(driver_error) in OUTAGES


def refusal(error: BaseException) -> BaseException | None:
    """The driver's error in `error`'s chain that is the server's refusal of a privilege, or of a
    write to a read-only server; None where it holds no such refusal."""
    for link in error_chain(error):
        number = error_number(link)
        if number in PRIVILEGE_REFUSALS or number in READ_ONLY:
            return link
    return None


def missing_database(error: BaseException) -> str | None:
    """The database a login named that the server does not have, and the statement that makes it;
    None for any other error."""
    for link in error_chain(error):
        if error_number(link) == UNKNOWN_DATABASE:
            message = str(link.args[1]) if len(link.args) > 1 else ""
            named_database = re.search(r"Unknown database '(.*)'", message)
            if named_database is None:
                return None
            database = named_database.group(1)
            return (
                f"the server has no database {database!r}: create it (`CREATE DATABASE "
                f"{plain_or_quoted(database)}`), or fix the database name in the URL"
            )
    return None


def refused_login(error: BaseException) -> str | None:
    """A login the server refused (LOGIN_REFUSALS), in words with what to change; None for any
    other error."""
    for link in error_chain(error):
        if error_number(link) in LOGIN_REFUSALS:
            message = str(link.args[1]) if len(link.args) > 1 else ""
            named_account = re.search(r"user ('[^']*'@'[^']*')", message)
            who = named_account.group(1) if named_account else "this account"
            return (
                f"the server refused the login of {who} (a wrong password, or no such account "
                "for this host): fix the user name or password in the URL, percent-encoding "
                "any % @ / in it as %25 %40 %2F, or create the account for this host"
            )
    return None


def refused(denied: BaseException, parsed: sqlalchemy.URL) -> str:
    """`denied` (a `refusal`) in words, with the GRANT that lifts it, or, for a read-only server,
    where to point instead."""
    number, message = denied.args[0], str(denied.args[1]) if len(denied.args) > 1 else ""
    if number in READ_ONLY:
        return (
            f"{message} (a replica, read_only set, or sessions made read-only); point "
            f"{named('storage')} at the primary, or use a user that can write"
        )
    if number == DATABASE_REFUSED:  # no session to ask: the server's message names the account
        named_account = re.search(r"user ('[^']*'@'[^']*')", message)
        if named_account is None or parsed.database is None:
            return message
        who, database = named_account.group(1), parsed.database
    else:
        try:
            who, database = _asked_account(parsed)
        except sqlalchemy.exc.DBAPIError:  # gone since it refused: its own words, then
            return message
    command = re.match(r"(\w+) command denied", message)
    creating = command is not None and command.group(1).upper() in CREATE_GRANT.split(", ")
    privileges = CREATE_GRANT if creating else WRITE_GRANT
    return f"{message}: grant it `{grant(privileges, database, who)}`, or use a user that can"


def _asked_account(parsed: sqlalchemy.URL) -> tuple[str, str]:
    """The account and database of a session of its own at `parsed`, whose login the server took
    (a statement was refused, not the login)."""
    engine = sqlalchemy.create_engine(parsed)
    try:
        with engine.connect() as connection:
            return account(connection)
    finally:
        engine.dispose()


def account(connection: sqlalchemy.Connection) -> tuple[str, str]:
    """The account the server knows this session as, quoted as GRANT takes it ('user'@'host'), and
    the database in use."""
    user, database = connection.execute(sqlalchemy.text("SELECT CURRENT_USER(), DATABASE()")).one()
    name, _, host = str(user).rpartition("@")
    return f"'{name}'@'{host}'", str(database)


def grant(privileges: str, database: str, who: str) -> str:
    return f"GRANT {privileges} ON {plain_or_quoted(database)}.* TO {who}"


def plain_or_quoted(name: str) -> str:
    # A plain name bare: statements are shown between backticks, as code
    return name if re.fullmatch(r"[A-Za-z0-9_$]+", name) else quoted(name)


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# How long a MySQL or MariaDB server may take to greet a new connection: it speaks first, and
# at once. PyMySQL waits for the greeting without a limit, so a MySQL URL at a port of another
# server (PostgreSQL's 5432, which waits for the client to speak) hung until that server gave up
# on it (a minute), then said "Lost connection to MySQL server during query".
GREETING_SECONDS = 10.0
# The greeting's first byte, after its 4-byte header: protocol 10, or an error packet's 0xff (a
# host the server blocks, too many connections)
GREETINGS = (10, 0xFF)


def check_greets(url: sqlalchemy.URL, shown: str) -> None:
    """Refuse a MySQL URL whose server does not greet as MySQL and MariaDB do; a server not
    reached at all is left to the connection that follows, which says so (or waits for it)."""
    if not url.drivername.startswith(("mysql", "mariadb")) or url.query.get("unix_socket"):
        return
    address = (url.host or "localhost", url.port or 3306)
    try:
        with socket.create_connection(address, timeout=GREETING_SECONDS) as probe:
            header = probe.recv(5)
    except TimeoutError:
        header = None
    except OSError:  # refused, unresolved, reset: the driver's own error says it, or is waited out
        return
    if header == b"" or (header is not None and len(header) == 5 and header[4] in GREETINGS):
        return  # greeted, or closed at once (shutting down): the driver goes on from there
    heard = "nothing" if header is None else "no MySQL greeting"
    raise StorageError(
        f"storage {shown}: the server at {address[0]}:{address[1]} sent {heard} within "
        f"{GREETING_SECONDS:g} s, where a MySQL or MariaDB server greets at once: is the port "
        "another server's (PostgreSQL's is 5432, MySQL's 3306)? Fix the port or the URL's scheme"
    )
