"""docker-compose.yml as `docker-compose config` reads it: services, bindings, mounts, secrets.

There is no Docker engine here; `config` resolves the file and the .env variables without one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from search.cli import build_parser
from search.launch.kubernetes_objects import GRACE_SECONDS
from tests.helpers.dashboard import free_port, make_study

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PASSWORD = "test-only-Xq7"

pytestmark = [
    pytest.mark.compose,
    pytest.mark.skipif(
        shutil.which("docker-compose") is None,
        reason="docker-compose is not installed (Debian package docker-compose)",
    ),
]


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    # The test's own environment must not fill in what the .env file leaves out.
    names = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    env = {key: value for key, value in os.environ.items() if key not in names}
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    env_file = tmp_path_factory.mktemp("compose") / "env"
    env_file.write_text(
        ENV_EXAMPLE.read_text().replace("POSTGRES_PASSWORD=\n", f"POSTGRES_PASSWORD={PASSWORD}\n")
    )
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def ports(service: dict) -> list[tuple[str, str, str]]:
    """(host address, published port, container port)
    whether compose prints short or long syntax."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), str(port["published"]), str(port["target"])))
        else:
            host, published, target = str(port).split("/")[0].rsplit(":", 2)
            found.append((host, published, target))
    return found


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """container path -> (source, read-only)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = (volume["source"], bool(volume.get("read_only")))
        else:
            source, target, *mode = volume.split(":")
            found[target] = (source, mode == ["ro"])
    return found


def test_the_stack_has_the_database_the_dashboard_and_gpu_workers(config):
    services = config["services"]
    assert set(services) == {"db", "dashboard", "worker"}
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    for name in ("dashboard", "worker"):
        assert services[name]["depends_on"] == {"db": {"condition": "service_healthy"}}
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert (
        len(devices) == 1
        and devices[0]["count"] in ("all", -1)
        and devices[0]["capabilities"] == ["gpu"]
    )
    assert (
        services["worker"]["command"][:1] == ["run"]
        and "--workers" in services["worker"]["command"]
    )


@pytest.mark.parametrize(
    "env_line, expected", [("TRIALS_PER_WORKER=3\n", 3), ("", 1)], ids=["set", "unset"]
)
def test_trials_per_worker_from_the_env_file_reaches_the_worker_command(
    tmp_path, env_line, expected
):
    env_file = tmp_path / "env"
    env_file.write_text(
        ENV_EXAMPLE.read_text()
        .replace("POSTGRES_PASSWORD=\n", f"POSTGRES_PASSWORD={PASSWORD}\n")
        .replace("TRIALS_PER_WORKER=1\n", env_line)
    )
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    command = yaml.safe_load(result.stdout)["services"]["worker"]["command"]
    # the image's entrypoint is `hpsearch`: the command is what follows it
    assert build_parser().parse_args(command).trials_per_worker == expected


def test_the_dashboard_and_database_are_published_on_loopback_only(config):
    services = config["services"]
    assert ports(services["dashboard"]) == [("127.0.0.1", "8080", "8080")]
    assert (
        services["dashboard"]["command"][services["dashboard"]["command"].index("--host") + 1]
        == "0.0.0.0"
    )
    assert ports(services["db"]) == [("127.0.0.1", "5432", "5432")]


def test_data_is_read_only_and_cache_and_checkpoints_are_named_volumes(config):
    worker = mounts(config["services"]["worker"])
    assert worker["/data"][1] is True
    named = set(config["volumes"])
    assert worker["/cache"][0] in named and worker["/checkpoints"][0] in named
    assert mounts(config["services"]["db"])["/var/lib/postgresql/data"][0] in named


def strings(node, key=""):
    """(key, value) for every string in the resolved config."""
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from strings(child, str(child_key))
    elif isinstance(node, list):
        for child in node:
            yield from strings(child, key)
    elif isinstance(node, str):
        yield key, node


def test_the_password_comes_only_from_the_env_file(config):
    # A literal password anywhere in docker-compose.yml
    # would show here as a value other than .env's.
    passwords = [value for key, value in strings(config) if "PASSWORD" in key.upper()]
    urls = [make_url(value) for _, value in strings(config) if value.startswith("postgresql")]
    assert passwords and urls
    assert all(value == PASSWORD for value in passwords) and all(
        url.password == PASSWORD for url in urls
    )
    expected = f"postgresql+psycopg://hpsearch:{PASSWORD}@db:5432/hpsearch"
    for name in ("dashboard", "worker"):
        assert config["services"][name]["environment"]["HPSEARCH_STORAGE"] == expected


@pytest.mark.parametrize("password_line", ["", "POSTGRES_PASSWORD=\n"], ids=["unset", "empty"])
def test_config_refuses_to_run_without_a_password(tmp_path, password_line):
    env_file = tmp_path / "env"
    env_file.write_text(ENV_EXAMPLE.read_text().replace("POSTGRES_PASSWORD=\n", password_line))
    result = compose_config(env_file)
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr + result.stdout


def test_env_example_documents_every_variable_the_compose_file_uses():
    lines = ENV_EXAMPLE.read_text().splitlines()
    documented = {
        line.split("=", 1)[0]: index for index, line in enumerate(lines) if re.match(r"^\w+=", line)
    }
    for name in set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text())):
        assert name in documented, f"{name} is used in docker-compose.yml but not in .env.example"
        block = lines[: documented[name]]
        # The lines since the last blank one belong to this setting
        while block and block[-1].strip():
            if block[-1].startswith("#"):
                break
            block.pop()
        assert block and block[-1].startswith("#"), f"{name} has no comment in .env.example"


def test_the_worker_has_the_time_to_checkpoint_when_compose_stops_it(config):
    # `docker compose stop` gives 10 s by default; a worker needs what a Kubernetes pod gets
    grace = config["services"]["worker"].get("stop_grace_period", "10s")
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", grace)
    assert parts and grace, grace
    hours, minutes, seconds = (int(part or 0) for part in parts.groups())
    assert hours * 3600 + minutes * 60 + seconds >= GRACE_SECONDS


def test_a_worker_that_keeps_failing_is_not_restarted_forever(config):
    # A study file that `run` refuses exits 2 on every start: restarted without end, its one
    # error line is lost among the restarts
    policy = config["services"]["worker"]["restart"]
    assert re.fullmatch(r"on-failure:[1-9]\d?", policy), policy


@pytest.mark.postgres
def test_the_dashboard_waits_for_a_study_rather_than_exiting_on_a_fresh_database(config, pg_url):
    # `docker compose up -d db dashboard` comes before the worker's `run` makes a study: the
    # container's command line, run here as Docker would (its image's entrypoint is hpsearch)
    dashboard = config["services"]["dashboard"]
    entrypoint = [part.replace("$$", "$") for part in dashboard.get("entrypoint", ["hpsearch"])]
    port = free_port()
    command = [*dashboard["command"]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "HPSEARCH_STORAGE": pg_url, "PATH": path}
    process = subprocess.Popen([*entrypoint, *command], env=env, start_new_session=True)
    try:
        time.sleep(3)
        assert process.poll() is None, "the dashboard exited on a database without a study"
        make_study(pg_url)  # as the worker's `hpsearch run` does
        deadline = time.monotonic() + 40
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
