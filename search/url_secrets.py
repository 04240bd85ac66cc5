"""The secrets a storage URL may carry, found once: hidden wherever a URL is printed or stored
(`masked`), and named, never shown, where a URL must hold none (a study file's `storage`).

Read from the text as the user wrote it, not as SQLAlchemy parses it: where the two disagree (an
unencoded @ in a password or in a query value, which search.study.storage refuses) what either
reading takes for a secret counts, so not even part of one is ever shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

HIDDEN = "***"
# The secrets a URL may carry, each in the group "secret". The password: from the user name's colon
# to the last @ before the query, past any @ the password holds unencoded (SQLAlchemy would stop at
# the first and read the rest as the host), and past a / after such an @ (p@ss/w0rd@host: a reader
# takes all of "p@ss/w0rd" for the password); the user name may hold an @ (user@server, Azure's).
_PASSWORD = re.compile(r"://[^:/]*:(?P<secret>[^@]*(?:@[^?#@]*(?=@))*)@")
# A query parameter whose name says it holds a secret: password, sslpassword, passfile, api_key,
# token, client_secret...
_SECRET_PARAMETER = re.compile(
    r"(?i)[?&;](?P<name>[^=&;#]*(?:pass|secret|token|key)[^=&;#]*)=(?P<secret>[^&;#]*)"
)
PASSWORD = "a password"


def masked(url: str) -> str:
    """`url` as it may be printed or stored: the user-info password and every query parameter
    named like a secret (*pass*, *secret*, *token*, *key*) replaced by ***."""
    merged: list[list[int]] = []  # the secrets' spans, overlapping ones merged
    for start, stop in sorted(span for _, span in _secrets(url)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    shown, end = "", 0
    for start, stop in merged:
        shown, end = shown + url[end:start] + HIDDEN, stop
    return shown + url[end:]


def secrets_named(url: str) -> list[str]:
    """What `masked` would hide in `url`, named without a character of any value: PASSWORD, or
    else each secret query parameter, as "query parameter 'sslpassword'". Empty when none.

    A password comes alone: a parameter's name read inside it (u:pw?token=x@host) is part of it."""
    found = [name for name, _ in _secrets(url)]
    if PASSWORD in found:
        return [PASSWORD]
    return [f"query parameter {name!r}" for name in dict.fromkeys(found)]


def _secrets(url: str) -> Iterator[tuple[str, tuple[int, int]]]:
    """(PASSWORD or the parameter's name, the value's span) for every non-empty secret."""
    for match in _PASSWORD.finditer(url):
        if match["secret"]:
            yield PASSWORD, match.span("secret")
    for match in _SECRET_PARAMETER.finditer(url):
        if match["secret"]:
            yield match["name"], match.span("secret")
