"""Waiting for a server a test started: `hpsearch dashboard` says where it serves just before it
binds, so a test that opens the page at once waits for the port first."""

from __future__ import annotations

import socket
import time


def listening_within(port: int, seconds: float) -> bool:
    """Whether 127.0.0.1:`port` takes connections within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=seconds).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False
