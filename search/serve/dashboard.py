"""`hpsearch dashboard`: optuna-dashboard on the study storage.

optuna-dashboard has no authentication and anyone who reaches it can delete a study, so it
binds 127.0.0.1 unless told otherwise, and says so loudly when told.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from search import locations
from search.serve.notes import artifact_store
from search.study.storage import masked, open_storage

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def serve(
    url: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    artifact_dir: Path | None = None,
) -> None:
    """Serve the dashboard until interrupted."""
    # A wrong URL fails here with our message, not in a request later; serving creates nothing
    storage = open_storage(url, create=False)
    artifact_dir = artifact_dir or locations.artifact_dir(url)
    warn_if_exposed(host, "optuna-dashboard has no login: anyone who reaches it can delete studies")
    print(
        f"dashboard on http://{_url_host(host)}:{port}/dashboard/ for studies in {masked(url)}; "
        f"artifacts in {artifact_dir}",
        flush=True,
    )
    import optuna_dashboard  # imported on use: a GPU worker machine may run without it

    optuna_dashboard.run_server(
        storage, host=host, port=port, artifact_store=artifact_store(artifact_dir)
    )


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


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
