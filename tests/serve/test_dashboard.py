"""`hpsearch dashboard` and `grpc-proxy`: binding, printed URLs, and the notes and artifacts a study
carries for the dashboard."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import optuna_dashboard
import pytest
from optuna.artifacts import upload_artifact
from optuna.trial import TrialState

from search.cli import build_parser, main
from search.serve import dashboard
from search.serve.notes import attach_best_params, attach_report
from search.study.storage import open_storage
from tests.helpers.cli import listing
from tests.helpers.dashboard import INTERRUPTIBLE_HPSEARCH, free_port, make_study

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    return make_study(f"sqlite:///{tmp_path / 'studies.db'}")


def get(app, path: str) -> tuple[str, bytes]:
    status, _, body = fetch(app, path)
    return status, body


def fetch(app, path: str) -> tuple[str, dict[str, str], bytes]:
    """What the app answers a GET of `path`: its status line, headers and body."""
    environ: dict = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    started = []
    body = b"".join(
        app(environ, lambda line, headers, exc_info=None: started.append((line, dict(headers))))
    )
    return started[0][0], started[0][1], body


@pytest.fixture
def served(monkeypatch, tmp_path):
    """Run `hpsearch dashboard` up to the point of serving; returns what serve_app was given."""
    calls = []
    sqlite = open_storage(f"sqlite:///{tmp_path / 'served.db'}")
    # No PostgreSQL needed to print its URL
    monkeypatch.setattr(dashboard, "open_storage", lambda url, **options: sqlite)
    # Nor a free port 8080 on the machine that runs the tests: nothing listens here
    monkeypatch.setattr(dashboard, "check_port_free", lambda host, port: None)
    monkeypatch.setattr(
        dashboard,
        "serve_app",
        lambda app, host, port, **options: calls.append({"host": host, "port": port, **options}),
    )
    return calls


def test_the_dashboard_binds_loopback_unless_told():
    args = build_parser().parse_args(["dashboard"])
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    proxy = build_parser().parse_args(["grpc-proxy"])
    assert proxy.host == "127.0.0.1"


def test_a_non_local_host_warns_and_the_password_never_prints(served, capsys, tmp_path):
    url = "postgresql+psycopg://team:hunter2@db.example:5432/hpsearch"
    assert (
        main(
            [
                "dashboard",
                "--storage",
                url,
                "--host",
                "0.0.0.0",
                "--port",
                "8099",
                "--artifacts",
                str(tmp_path / "art"),
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert "warning" in err and "0.0.0.0" in err and "delete studies" in err
    assert "http://0.0.0.0:8099/dashboard/" in out and "team:***@db.example:5432/hpsearch" in out
    assert "hunter2" not in out + err
    assert served == [{"host": "0.0.0.0", "port": 8099, "access_log": False}]


def test_the_default_binding_prints_no_warning(served, capsys, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'served.db'}"
    open_storage(url)  # the dashboard serves an existing storage only
    monkeypatch.setenv("HPSEARCH_STORAGE", url)
    assert main(["dashboard", "--artifacts", str(tmp_path / "art")]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err and "http://127.0.0.1:8080/dashboard/" in out
    assert served[0]["host"] == "127.0.0.1"


def test_an_unreachable_database_is_one_masked_error_line(capsys):
    url = "postgresql+psycopg://team:hunter2@127.0.0.1:1/hpsearch"
    code = main(["dashboard", "--storage", url, "--port", str(free_port())])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach storage" in err and "team:***@127.0.0.1:1" in err
    assert "hunter2" not in err


def test_a_busy_port_is_told_before_the_storage_is_reached(capsys):
    """Told at once, not after the storage's error is mended (or after waiting on its server)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        url = "postgresql+psycopg://team@127.0.0.1:1/hpsearch"
        code = main(["dashboard", "--storage", url, "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and "is in use by another program" in err and "storage" not in err


def test_a_report_is_served_by_the_dashboard_and_a_refresh_replaces_it(study, tmp_path):
    report = tmp_path / "report.html"
    report.write_text("<h1>first</h1>")
    first = attach_report(study, report, tmp_path / "artifacts")
    report.write_text("<h1>second</h1>")
    second = attach_report(study, report, tmp_path / "artifacts")

    note = optuna_dashboard.get_note(study)
    link = f"/artifacts/{study._study_id}/{second}"
    assert first == second and note.count("## Report") == 1 and f"[report.html]({link})" in note
    best = study.best_trial
    assert (
        f"trial {best.number}, val top-1 {best.value:.2%}" in note
        and "5 trials, 5 complete" in note
    )
    app = optuna_dashboard.wsgi(
        study._storage, artifact_store=dashboard.artifact_store(tmp_path / "artifacts")
    )
    status, body = get(app, link)
    assert status.startswith("200") and body == b"<h1>second</h1>"
    # One copy, named as a file a browser opens
    assert [path.name for path in (tmp_path / "artifacts").iterdir()] == [f"{second}.html"]


def test_a_report_copied_before_copies_had_a_suffix_is_still_served_then_renamed(study, tmp_path):
    artifacts = tmp_path / "artifacts"
    report = tmp_path / "report.html"
    report.write_text("<h1>old</h1>")
    artifact_id = attach_report(study, report, artifacts)
    (artifacts / f"{artifact_id}.html").rename(artifacts / artifact_id)  # as Optuna's store left it
    app = optuna_dashboard.wsgi(study._storage, artifact_store=dashboard.artifact_store(artifacts))
    link = f"/artifacts/{study._study_id}/{artifact_id}"
    assert get(app, link)[1] == b"<h1>old</h1>"
    report.write_text("<h1>new</h1>")
    assert attach_report(study, report, artifacts) == artifact_id
    assert [path.name for path in artifacts.iterdir()] == [f"{artifact_id}.html"]
    assert get(app, link)[1] == b"<h1>new</h1>"
    assert get(app, f"/artifacts/{study._study_id}/..%2Fstudies.db")[0].startswith("404")


def test_a_report_named_without_html_is_served_as_a_page_a_browser_opens(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = make_study(url)
    artifacts = tmp_path / "artifacts"
    report = tmp_path / "r2"  # -o with no .html: the page is HTML all the same

    status = main(
        ["report", "--study", study.study_name, "--storage", url, "-o", str(report)]
        + ["--artifacts", str(artifacts)]
    )

    assert status == 0, capsys.readouterr().err
    [copy] = artifacts.iterdir()
    assert copy.suffix == ".html" and copy.read_bytes() == report.read_bytes()
    app = optuna_dashboard.wsgi(
        open_storage(url), artifact_store=dashboard.artifact_store(artifacts)
    )
    status_line, headers, body = fetch(app, f"/artifacts/{study._study_id}/{copy.stem}")
    assert status_line.startswith("200") and headers["Content-Type"] == "text/html"
    assert body == report.read_bytes()


def test_a_report_once_served_as_a_download_is_served_as_a_page_once_refreshed(study, tmp_path):
    artifacts = tmp_path / "artifacts"
    report = tmp_path / "r2"
    report.write_text("<h1>old</h1>")
    # As a report named r2 was copied before: named by its id alone, its type guessed from `r2`
    artifact_id = upload_artifact(
        artifact_store=dashboard.artifact_store(artifacts),
        file_path=str(report),
        study_or_trial=study,
    )
    report.write_text("<h1>new</h1>")

    assert attach_report(study, report, artifacts) == artifact_id  # the note's link stays valid

    assert [path.name for path in artifacts.iterdir()] == [f"{artifact_id}.html"]
    app = optuna_dashboard.wsgi(study._storage, artifact_store=dashboard.artifact_store(artifacts))
    status_line, headers, body = fetch(app, f"/artifacts/{study._study_id}/{artifact_id}")
    assert headers["Content-Type"] == "text/html" and body == b"<h1>new</h1>"


@pytest.mark.parametrize(
    "artifacts",
    [
        "{a_file}",
        "{a_file}/sub",
        # Writable to root by its permissions, yet no folder can be made there
        pytest.param(
            "/proc/hpsearch-artifacts",
            marks=pytest.mark.skipif(not Path("/proc").is_dir(), reason="no /proc here"),
        ),
    ],
)
def test_an_artifact_folder_that_cannot_be_one_is_refused_before_the_dashboard_serves(
    served, tmp_path, capsys, artifacts
):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    before = listing(tmp_path)

    status = main(
        ["dashboard", "--storage", f"sqlite:///{tmp_path / 'served.db'}"]
        + ["--artifacts", artifacts.format(a_file=a_file)]
    )

    out, err = capsys.readouterr()
    assert (status, out, served) == (2, "", [])  # no "dashboard on http://..." first
    [line] = err.splitlines()
    assert line.startswith("hpsearch: error: artifact folder ") and "--artifacts" in line, line
    assert listing(tmp_path) == before


def test_the_dashboard_keeps_requests_off_the_terminal_unless_asked(tmp_path):
    url = f"sqlite:///{tmp_path / 'quiet.db'}"
    make_study(url)
    logs = {}
    # Ctrl-C, and SIGTERM as `docker compose stop` and Kubernetes stop it: both stop it cleanly,
    # where SIGTERM had killed it and left its SQLite storage's -wal and -shm files behind
    for flags, stop in (((), signal.SIGINT), (("--access-log",), signal.SIGTERM)):
        command = [*INTERRUPTIBLE_HPSEARCH, "dashboard", "--storage", url]
        server, port = _serving([*command, "--artifacts", str(tmp_path / "art"), *flags])
        try:
            wait_for(f"http://127.0.0.1:{port}/dashboard/")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10):
                pass
        finally:
            server.send_signal(stop)
            out, err = server.communicate(timeout=30)
        assert server.returncode == 0 and "dashboard stopped" in err, err
        assert not (tmp_path / "quiet.db-wal").exists()
        logs[flags] = err
    quiet, loud = logs.values()
    assert "GET /" not in quiet and "dashboard stopped" in quiet and "Traceback" not in quiet
    assert '"GET /dashboard/ HTTP/1.1" 200' in loud and '"GET /api/studies HTTP/1.1" 200' in loud


def _serving(command: list[str]) -> tuple[subprocess.Popen, int]:
    """`command --port N` started on a free port, once it says it serves; the process and N. A
    port that another test's connection took between the probe and the bind is tried again."""
    for _ in range(3):
        port = free_port()
        server = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if "dashboard on http://127.0.0.1" in server.stdout.readline():
            return server, port
        _, err = server.communicate(timeout=30)  # it ended: say why
        if "is in use by another program" not in err:
            raise AssertionError(f"the dashboard did not start: {err}")
    raise AssertionError("three free ports were taken before the dashboard bound them")


def wait_for(url: str) -> None:
    for _ in range(300):
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")


def test_best_params_and_report_share_the_note_and_a_persons_words_stay(study, tmp_path):
    optuna_dashboard.save_note(study, "Ranger looked best by hand.\n")
    attach_best_params(study, '{"lr": 0.01}', "json")
    report = tmp_path / "report.html"
    report.write_text("<p>plots</p>")
    attach_report(study, report, tmp_path / "artifacts")
    attach_best_params(study, "lr = 0.02\n# ```not a fence end```", "toml")

    note = optuna_dashboard.get_note(study)
    assert note.startswith("Ranger looked best by hand.\n")
    assert note.count("## Best parameters") == 1 and note.count("## Report") == 1
    assert "lr = 0.02" in note and '"lr": 0.01' not in note
    # Longer than the backticks inside, so the block ends where it should
    assert "````toml\n" in note


def test_attach_best_params_refuses_a_format_that_is_not_a_name(study):
    with pytest.raises(ValueError, match="fmt must be a format name"):
        attach_best_params(study, "{}", "json\n# injected")


def test_a_study_runs_through_the_grpc_proxy(tmp_path):
    pytest.importorskip("grpc")
    url = f"sqlite:///{tmp_path / 'behind-proxy.db'}"
    port = free_port()
    command = [sys.executable, "-m", "search", "grpc-proxy", "--storage", url, "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        proxy = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        proxy.wait_server_ready(timeout=60)
        make_study(proxy, name="through-proxy", trials=4)
        proxy.close()
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert f"gRPC storage proxy on 127.0.0.1:{port}" in output
    trials = optuna.load_study(study_name="through-proxy", storage=url).get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 4
