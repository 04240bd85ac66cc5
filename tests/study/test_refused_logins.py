"""A login the server (or libpq, for what the URL asks) refuses is named as such, with what to
change, and fails at once: not "cannot reach storage", and not waited on by a worker as an outage
(a worker waits minutes for a server that is down). Each on a real server: a PostgreSQL cluster of
the test's own that asks for a password, the test PostgreSQL (no SSL), the test MariaDB."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from sqlalchemy.engine import make_url

from search.url_secrets import masked
from tests.helpers import mysql
from tests.helpers.cli import run_cli
from tests.helpers.private_postgres import PrivateCluster

# A password with what a URL must percent-encode, which a URL that does works with
ROLE, PASSWORD = "alice", "right?p@ss/w%rd"
# Long enough for an outage's retries to be logged ("storage unreachable"), short enough that the
# code before the fix fails these tests in seconds instead of waiting out a worker's 5 minutes
WAIT = "3"


def _one_line_at_once(capsys, url: str, words: str) -> None:
    """`status` and `worker` on `url` each say `words` in one line, waiting out no outage, and
    never print the URL's password."""
    for command in (["status"], ["worker", "--study", "s", "--wait-for-storage", WAIT]):
        status, _, err = run_cli(capsys, *command, "--storage", url)
        [line] = err.strip().splitlines()
        assert status == 2 and words in line, line
        assert "cannot reach" not in line and f"storage {masked(url)}:" in line
        password = make_url(url).password
        assert password is None or str(password) not in line


def _asking_for_passwords(cluster: PrivateCluster) -> str:
    """A role with a password, which the cluster asks for over TCP (the superuser stays trusted);
    the URL of the role without its password."""
    with cluster.connect(autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
    hba = cluster.data / "pg_hba.conf"
    # the first line that matches a login decides it
    hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    cluster.stop()
    cluster.start()
    return make_url(cluster.url).set(username=ROLE).render_as_string(hide_password=False)


def test_a_login_refused_for_its_password_or_its_settings_is_named_at_once(
    capsys, private_postgres
):
    url = make_url(_asking_for_passwords(private_postgres))
    _one_line_at_once(
        capsys,
        url.set(password="wrong-pw").render_as_string(hide_password=False),
        "the server refused the password given for role 'alice' (a wrong password, or no such "
        "role): fix the user name or password in the URL",
    )
    # libpq's own refusal, with no FATAL: before, a worker waited it out as an outage
    _one_line_at_once(
        capsys,
        url.render_as_string(hide_password=False),
        "the server asks role 'alice' for a password and none was given: put it in the URL",
    )
    with_binding = url.set(password=PASSWORD, query={"channel_binding": "require"})
    _one_line_at_once(
        capsys,
        with_binding.render_as_string(hide_password=False),
        "the URL's channel_binding=require needs an SSL connection",
    )
    # the right password, percent-encoded, gets past the login: the database is empty
    port = private_postgres.port
    encoded = f"postgresql+psycopg://{ROLE}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/studies"
    status, _, err = run_cli(capsys, "status", "--storage", encoded)
    assert status == 2 and "holds no studies" in err, err


def test_ssl_required_of_a_server_without_it_is_named_at_once(capsys, pg_url):
    _one_line_at_once(
        capsys,
        f"{pg_url}?sslmode=require",
        "the server does not offer SSL, but the URL's sslmode asks for it: drop sslmode",
    )


def test_a_mariadb_login_refused_is_named_at_once(capsys, mysql_url):
    name = f"hps_{uuid.uuid4().hex[:10]}"
    mysql.execute(f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
    try:
        wrong = make_url(mysql_url).set(username=name, password="wrong-pw")
        _one_line_at_once(
            capsys,
            wrong.render_as_string(hide_password=False),
            f"the server refused the login of '{name}'@'127.0.0.1' (a wrong password, or no "
            "such account for this host): fix the user name or password in the URL",
        )
    finally:
        mysql.execute(f"DROP USER IF EXISTS '{name}'@'127.0.0.1'")
