"""`hpsearch dashboard`: optuna-dashboard on the study storage.

optuna-dashboard has no authentication and anyone who reaches it can delete a study, so it
binds 127.0.0.1 unless told otherwise, and says so loudly when told. It serves through wsgiref,
as optuna_dashboard.run_server does, but keeps the terminal for what a person needs to read: the
startup line and errors, not a line per request (the page polls the API every few seconds), unless
asked for the access log.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from optuna.storages import BaseStorage

from search import locations
from search.errors import ServeError
from search.serve.artifacts import ArtifactFolder, check_served_folder
from search.serve.notes import artifact_records, artifact_store
from search.study.storage import open_storage
from search.url_secrets import masked

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def serve(
    url: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    artifact_dir: Path | None = None,
    access_log: bool = False,
) -> None:
    """Serve the dashboard until interrupted; `access_log` prints a line per request."""
    artifact_dir = artifact_dir or locations.artifact_dir(url)
    check_served_folder(artifact_dir)  # before the storage is opened, as every path is checked
    check_port_free(host, port)  # and the port: a busy one is told at once, not after a wait
    # A wrong URL fails here with our message, not in a request later; serving creates nothing
    storage = open_storage(url, create=False)
    store = artifact_store(artifact_dir)  # made before the line that says where it serves
    warn_if_exposed(host, "optuna-dashboard has no login: anyone who reaches it can delete studies")
    warn_of_unserved_artifacts(storage, store)
    # The folder in full: beside a PostgreSQL storage it is `artifacts` of the current folder,
    # and "artifacts in artifacts" would tell nobody which
    print(
        f"dashboard on http://{bracketed(host)}:{port}/dashboard/ for studies in {masked(url)}; "
        f"artifacts in {artifact_dir.absolute()}; Ctrl-C stops it",
        flush=True,
    )
    import optuna_dashboard  # imported on use: a GPU worker machine may run without it

    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    serve_app(_missing_artifacts_answered(app, storage, store), host, port, access_log=access_log)


def warn_of_unserved_artifacts(storage: BaseStorage, store: ArtifactFolder) -> None:
    """Say so when files attached to studies (reports) are not in the folder served: a report
    written with another artifact folder (another $HPSEARCH_ARTIFACTS, or `artifacts/` of another
    current folder beside a PostgreSQL storage) has a link on its study's note that the dashboard
    answers with an error (_missing_artifacts_answered), at every click."""
    unserved = {
        study.study_name: sum(
            1 for artifact in _artifact_ids(study.system_attrs) if not store.holds(artifact)
        )
        for study in storage.get_all_studies()
    }
    lacking = {name: count for name, count in unserved.items() if count}
    if lacking:
        studies = ", ".join(f"{count} of study {name!r}" for name, count in lacking.items())
        print(
            f"hpsearch: warning: artifact folder {store.folder.absolute()} lacks files attached "
            f"to studies ({studies}): the dashboard answers their links with an error. Serve the "
            f"folder `hpsearch report` copied them into: --artifacts DIR or "
            f"${locations.ARTIFACTS_ENV}",
            file=sys.stderr,
            flush=True,
        )


# The dashboard's links to an artifact's file: a study's, or a trial's
ARTIFACT_LINK = re.compile(
    r"/artifacts/(?P<study>\d+)/(?:(?P<trial>\d+)/)?(?P<artifact>[0-9a-fA-F-]+)"
)


def _missing_artifacts_answered(
    app: Callable[..., Any], storage: BaseStorage, store: ArtifactFolder
) -> Callable[..., Any]:
    """`app`, but a link to an artifact it cannot serve is answered 404 with the reason, where
    optuna-dashboard answered 500 and printed a traceback here at every click: a file not in the
    folder served (warn_of_unserved_artifacts), or a study or trial since deleted (a bookmark, a
    page left open while someone deleted the study in the dashboard)."""

    def answering(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        link = ARTIFACT_LINK.fullmatch(environ.get("PATH_INFO", ""))
        reason = _unservable(link, storage, store) if link else None
        if reason is None:
            return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{reason}\n".encode()]

    return answering


def _unservable(link: re.Match[str], storage: BaseStorage, store: ArtifactFolder) -> str | None:
    artifact, study, trial = link["artifact"], int(link["study"]), link["trial"]
    if not store.holds(artifact):
        return (
            f"artifact {artifact} is not in the artifact folder {store.folder.absolute()}: start "
            f"the dashboard on the folder `hpsearch report` copied it into (--artifacts DIR or "
            f"${locations.ARTIFACTS_ENV})"
        )
    try:
        storage.get_study_name_from_id(study)
        if trial is not None:
            storage.get_trial(int(trial))
    except KeyError:
        what = f"study {study}" if trial is None else f"study {study} or trial {trial}"
        return f"no {what} in the storage: the link is to one since deleted"
    return None


def _artifact_ids(system_attrs: dict[str, Any]) -> list[str]:
    ids = [record.get("artifact_id") for record in artifact_records(system_attrs)]
    return [artifact_id for artifact_id in ids if isinstance(artifact_id, str)]


def serve_app(app: Callable[..., Any], host: str, port: int, *, access_log: bool) -> None:
    """Serve a WSGI app until Ctrl-C or SIGTERM, which end it without a traceback."""
    handler = type("RequestHandler", (RequestHandler,), {"access_log": access_log})
    server_class = IPv6Server if ":" in host else WSGIServer
    app = _answered_when_stopped(app)
    with make_server(host, port, app, server_class=server_class, handler_class=handler) as server:
        # Only the main thread receives signals (a test, or an embedding program, may serve
        # from another thread: Ctrl-C is not its to handle then)
        main = threading.current_thread() is threading.main_thread()
        previous = (
            {number: signal.signal(number, _interrupt) for number in _STOP_SIGNALS} if main else {}
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("dashboard stopped", file=sys.stderr, flush=True)
        finally:
            if _ALARM is not None and main:
                signal.alarm(0)  # a request that ended within the grace leaves no alarm behind
            for number, handler_before in previous.items():
                signal.signal(number, handler_before)
            INTERRUPTED.clear()


# Ctrl-C during a request would raise KeyboardInterrupt inside wsgiref's handler, whose bare
# `except` prints and swallows it, and the server served on (seen with a large page being sent).
# So the first Ctrl-C lets the request in hand finish and then stops; a second one stops at once.
# The request in hand may be waiting out a storage outage (retried for minutes: a database or gRPC
# proxy gone), so the first one says so and stops it anyway after STOP_GRACE_SECONDS.
INTERRUPTED = threading.Event()
IN_REQUEST = threading.Event()
STOP_GRACE_SECONDS = 5
_ALARM = getattr(signal, "SIGALRM", None)  # none on Windows: the second Ctrl-C is the only bound
# SIGTERM too: how `docker compose stop` and Kubernetes stop the dashboard, which it had killed
# before its storage was closed (a SQLite file's -wal and -shm left behind)
_STOPS = (signal.SIGINT, signal.SIGTERM)
_STOP_SIGNALS = _STOPS if _ALARM is None else (*_STOPS, _ALARM)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if INTERRUPTED.is_set() or not IN_REQUEST.is_set():
        raise KeyboardInterrupt
    INTERRUPTED.set()
    # Straight to the descriptor: a print here, from a handler that may have cut a write to
    # standard error short (an access-log line), is a reentrant call Python refuses
    os.write(
        2,
        f"dashboard stopping once the request in hand is answered (at most {STOP_GRACE_SECONDS} "
        "s); Ctrl-C again stops it now\n".encode(),
    )
    if _ALARM is not None:
        signal.alarm(STOP_GRACE_SECONDS)


def _answered_when_stopped(app: Callable[..., Any]) -> Callable[..., Any]:
    """`app`, but a request that Ctrl-C (or the grace's end) cuts short is answered 503 here,
    rather than reaching wsgiref's handler, which prints a traceback for it; the server stops
    once that answer is sent (RequestHandler.handle)."""

    def answering(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return app(environ, start_response)
        except KeyboardInterrupt:
            INTERRUPTED.set()
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8")],
                sys.exc_info(),
            )
            return [b"the dashboard was stopped before it answered\n"]

    return answering


class RequestHandler(WSGIRequestHandler):
    """A request logs a line only with the access log on, or when the server failed it (5xx);
    wsgiref's own errors (a malformed request, an exception in the app) print either way."""

    access_log = False

    def handle(self) -> None:
        IN_REQUEST.set()
        try:
            super().handle()
        finally:
            IN_REQUEST.clear()
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt

    def address_string(self) -> str:
        return str(self.client_address[0])  # no reverse DNS lookup per request

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.access_log or _server_error(code):
            super().log_request(code, size)


def _server_error(code: int | str) -> bool:
    try:
        return int(code) >= 500
    except ValueError:  # "-": no status was sent
        return False


class IPv6Server(WSGIServer):
    address_family = socket.AF_INET6


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def warn_if_exposed(host: str, danger: str) -> None:
    if not is_loopback(host):
        print(
            f"hpsearch: warning: listening on {host}, reachable from other machines; {danger}. "
            "Bind 127.0.0.1 and use an SSH tunnel (ssh -L PORT:127.0.0.1:PORT HOST) instead.",
            file=sys.stderr,
            flush=True,
        )


def check_port_free(host: str, port: int) -> None:
    """ServeError, naming the port and the fix, unless a server may listen on host:port: tried
    before anything is opened or made, so that a port in use leaves nothing behind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As wsgiref's server does: a port a stopped server left in TIME_WAIT is free to take
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServeError(_cannot_listen(host, port, error)) from None


def _cannot_listen(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use by another program: pass --port N, a free port"
    if error.errno == errno.EACCES:
        return (
            f"port {port} on {host} needs privileges (a port below 1024): pass --port 1024 or more"
        )
    reason = error.strerror or str(error)
    return (
        f"cannot listen on {host}:{port}: {reason}; pass --host 127.0.0.1 or an address of "
        "this machine"
    )


def bracketed(host: str) -> str:
    """A host as a URL or gRPC's `host:port` takes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
