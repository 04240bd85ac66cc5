"""A password with an unencoded / after an unencoded @ is hidden whole: SQLAlchemy reads it up to
its first @, a person up to the @ before the host, and neither reading shows a character of it."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url

from search.url_secrets import PASSWORD, masked, secrets_named


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:Pp@Ss/W0rd@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:Aa@Bb/Cc@host", "postgresql://u:***@host"),
        ("postgresql://u:Aa@Bb/Cc/Dd@Ee@host:5432/db", "postgresql://u:***@host:5432/db"),
        (
            "postgresql://u:Pp@Ss/W0rd@host/db?application_name=me@work",
            "postgresql://u:***@host/db?application_name=me@work",
        ),
        ("postgresql://adm@server:Pp@Ss/W0rd@host/db", "postgresql://adm@server:***@host/db"),
    ],
)
def test_a_slash_after_an_at_in_a_password_shows_none_of_it(url, shown):
    assert masked(url) == shown
    # What SQLAlchemy takes for the password (up to the first @) and each piece a reader would
    parts = [make_url(url).password, "Ss", "W0rd", "Bb", "Cc", "Dd", "Ee"]
    assert not [part for part in parts if part and part in masked(url)]
    assert secrets_named(url) == [PASSWORD]
