"""A network between us and the test PostgreSQL that can lose the answer to a COMMIT: the commit
reaches the server and is made, then the connection drops before its client hears of it; and one
between a client and the gRPC proxy that loses the answer to a request the proxy carried out
(`RelayLosingAnswers`).

`LosingProxy` forwards TCP both ways. Once armed (`lose_next_commit_answer`) it lets the next
COMMIT reach the server, reads the server's whole answer, then closes both sides instead of passing
it on: the client's driver sees the server close the connection mid-call, exactly as when a link
fails after the commit. `arm_on` arms it when a given statement runs, so that the COMMIT lost is
that statement's transaction's.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy
from sqlalchemy.engine import make_url

# psycopg commits with a simple query: 'Q', its length (4 + 7), "COMMIT" and a NUL
COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"
# The server's last message of any answer: 'Z', length 5, the transaction status
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


class Relay:
    """TCP from a port of its own on 127.0.0.1 to `server`, one thread per connection running
    `_forward`, which each kind of relay writes; a client whose server is down is closed at once."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.answers_lost = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(self.server)
            except ConnectionRefusedError:
                client.close()
                continue
            threading.Thread(target=self._forward, args=(client, server), daemon=True).start()

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        raise NotImplementedError


class LosingProxy(Relay):
    """A TCP proxy on 127.0.0.1 in front of the PostgreSQL server of `url`."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        super().__init__((parsed.host or "127.0.0.1", parsed.port or 5432))
        self._armed = threading.Event()
        # The storage URL through the proxy; the protocol must be readable: no TLS, no GSS
        self.url = (
            parsed.set(host="127.0.0.1", port=self.port)
            .update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
            .render_as_string(hide_password=False)
        )

    def lose_next_commit_answer(self) -> None:
        self._armed.set()

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        with client, server:
            for source, data in _chunks(client, server):
                if source is server:
                    client.sendall(data)
                    continue
                server.sendall(data)
                if COMMIT in data and self._armed.is_set():
                    self._armed.clear()
                    self._swallow_answer(server)
                    self.answers_lost += 1
                    return  # both closed: the client never hears the answer

    @staticmethod
    def _swallow_answer(server: socket.socket) -> None:
        """Read the server's answer to the COMMIT whole: once it is sent, the commit is made."""
        answer = b""
        while READY_FOR_QUERY not in answer:
            data = server.recv(65536)
            if not data:
                return
            answer += data


@contextmanager
def losing_proxy(url: str) -> Iterator[LosingProxy]:
    proxy = LosingProxy(url)
    try:
        yield proxy
    finally:
        proxy.close()


def arm_on(engine: sqlalchemy.Engine, proxy: LosingProxy, statement: str) -> None:
    """Lose the answer to the COMMIT of the first transaction that runs a statement beginning with
    `statement` on `engine` (its next COMMIT on the wire: a connection runs one transaction at a
    time, and the test runs one call at a time)."""
    armed: list[bool] = []

    def arm(connection, cursor, text: str, *args) -> None:
        if not armed and text.lstrip().startswith(statement):
            armed.append(True)
            proxy.lose_next_commit_answer()

    sqlalchemy.event.listen(engine, "before_cursor_execute", arm)


class RelayLosingAnswers(Relay):
    """A TCP relay on 127.0.0.1 to `port` there (the gRPC proxy) that can lose one answer.

    Once armed (`lose_next_answer`), what the server sends is held back (what the client sends
    still goes through) until `made()` says the next request's write is in the database, then both
    sides close: the client sees its connection drop after the server did what it asked. Arm it on
    a connection the client has made already (a call went through), or the held bytes are the
    server's greeting and no request follows.
    """

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port))
        self._made: Callable[[], bool] | None = None

    def lose_next_answer(self, made: Callable[[], bool]) -> None:
        self._made = made

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        made: Callable[[], bool] | None = None  # the write to wait for, once the server spoke
        deadline = 0.0
        with client, server:
            while made is None or not made():
                assert made is None or time.monotonic() < deadline, "the write was never made"
                readable, _, _ = select.select([client, server], [], [], 0.05)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client:  # the request goes on even while answers are held
                        server.sendall(data)
                    elif made is None and self._made is not None:
                        made, self._made = self._made, None
                        deadline = time.monotonic() + 30
                    elif made is None:
                        client.sendall(data)
            self.answers_lost += 1  # both sides close: the client never hears the answer


def _chunks(client: socket.socket, server: socket.socket) -> Iterator[tuple[socket.socket, bytes]]:
    """What either side sends, as it comes, until one of them closes."""
    while True:
        readable, _, _ = select.select([client, server], [], [])
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            yield source, data
