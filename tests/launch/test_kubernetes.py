"""`hpsearch kubernetes`: the manifests, checked offline (no cluster runs here) with the schemas
that `kubernetes-validate` ships, strictly (an unknown field is an error), and read back for what a
user relies on: GPU workers as an Indexed Job that survives preemption, the URL only from a Secret,
nothing reachable from outside the cluster, and command lines that the `hpsearch` parser accepts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import kubernetes_validate
import optuna
import pytest
import yaml

from search.cli import build_parser, main
from search.errors import LaunchError
from search.launch.kubernetes_objects import KubernetesJob
from search.studyfile import load_study_config
from tests.helpers import ROOT
from tests.helpers.cli import listing
from tests.helpers.studies import write_study

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The newest release the installed kubernetes-validate ships schemas for, named so that a new
# package does not change what CI checks without a commit saying so.
KUBERNETES_VERSION = "1.37.0"
IMAGENETTE = ROOT / "studies" / "imagenette.toml"
BASE = ["kubernetes", IMAGENETTE, "--workers", "4", "--image", "hpsearch:latest"]
VARIANTS = {
    "default": [],
    "storage-secret": ["--storage-secret", "team-db"],
    "dashboard": ["--with-dashboard"],
    "cpu": ["--gpus-per-worker", "0", "--cpu", "4", "--memory", "16Gi"],
    "checkpoint-pvc": ["--checkpoint-pvc", "shared-ckpt", "--data-pvc", "imagenette2-160"],
    "all": [
        "--namespace", "ml", "--with-dashboard", "--storage-secret", "team-db", "--trials", "40",
        "--epochs", "5", "--image-size", "64", "--compile", "--cpu", "500m", "--memory", "32Gi",
        "--log-format", "json", "--trials-per-worker", "3",
    ],
}  # fmt: skip


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def render(capsys, *extra) -> list[dict]:
    status, out, err = run_cli(capsys, *BASE, *extra)
    assert status == 0, err
    return [document for document in yaml.safe_load_all(out) if document]


def by_kind(documents: list[dict], kind: str) -> list[dict]:
    return [document for document in documents if document["kind"] == kind]


def job(documents: list[dict], component: str) -> dict:
    (found,) = [
        document
        for document in by_kind(documents, "Job")
        if document["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return found


def pod_spec(document: dict) -> dict:
    return document["spec"]["template"]["spec"]


def containers(documents: list[dict]) -> list[dict]:
    return [
        container
        for document in documents
        if "template" in document.get("spec", {})
        for container in pod_spec(document)["containers"]
        + pod_spec(document).get("initContainers", [])
    ]


def env(container: dict) -> dict[str, dict]:
    return {variable["name"]: variable for variable in container["env"]}


def test_the_pinned_version_is_one_the_package_ships():
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_document_passes_strict_schema_validation(capsys, variant):
    documents = render(capsys, *VARIANTS[variant])
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_misspelled_field_fails_the_strict_validation_these_tests_use(capsys):
    document = job(render(capsys), "workers")
    document["spec"]["completionMode "] = "Indexed"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_workers_are_an_indexed_job_of_gpu_pods_that_survive_preemption(capsys):
    workers = job(render(capsys), "workers")
    spec = workers["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    disrupted = {"type": "DisruptionTarget", "status": "True"}
    assert {"action": "Ignore", "onPodConditions": [disrupted]} in spec["podFailurePolicy"]["rules"]
    assert spec["backoffLimit"] >= 4
    pod = pod_spec(workers)
    assert pod["restartPolicy"] == "Never"  # what a pod failure policy requires
    assert pod["terminationGracePeriodSeconds"] >= 120  # time to write a checkpoint on SIGTERM
    (worker,) = pod["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["args"][:2] == ["worker", "/etc/hpsearch/imagenette.toml"]
    assert worker["args"][worker["args"].index("--device") + 1] == "cuda"
    assert env(worker)["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    mounts = {mount["mountPath"]: mount["name"] for mount in worker["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    cache = worker["args"][worker["args"].index("--cache-dir") + 1]
    checkpoints = worker["args"][worker["args"].index("--checkpoint-dir") + 1]
    assert volumes[mounts[cache]]["emptyDir"] == {}
    assert volumes[mounts[checkpoints]]["persistentVolumeClaim"]["claimName"] == (
        "hpsearch-checkpoints"
    )


def test_cpu_workers_ask_for_no_gpu(capsys):
    documents = render(capsys, "--gpus-per-worker", "0", "--cpu", "4", "--memory", "16Gi")
    (worker,) = pod_spec(job(documents, "workers"))["containers"]
    assert worker["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"memory": "16Gi"},
    }
    assert worker["args"][worker["args"].index("--device") + 1] == "cpu"
    assert env(worker)["OMP_NUM_THREADS"]["value"] == "4"
    assert "tolerations" not in pod_spec(job(documents, "workers"))


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_workers_log_a_line_per_event_in_the_format_asked(capsys, log_format):
    documents = render(capsys, "--log-format", log_format)
    (worker,) = pod_spec(job(documents, "workers"))["containers"]
    assert "--no-progress" in worker["args"]  # a pod's log is no terminal: never a bar
    assert worker["args"][worker["args"].index("--log-format") + 1] == log_format


@pytest.mark.parametrize(
    "setting, expect",
    [
        ({"log_format": "xml"}, "--log-format must be one of text, json, but got 'xml'"),
        ({"trials": 0}, "--trials must be at least 1, but got 0"),
        ({"trials": 10**7}, "--trials must be at most 1000000"),
    ],
)
def test_the_python_api_is_refused_what_the_command_line_is(setting, expect):
    """The command's parser and study file refuse these; a KubernetesJob made in Python rendered
    them, and every worker's (or the creator's) pod failed as it started."""
    with pytest.raises(LaunchError, match=re.escape(expect)):
        KubernetesJob(workers=1, image="hpsearch:latest", **setting)


def test_workers_train_as_many_trials_at_once_as_asked(capsys):
    documents = render(capsys, "--trials-per-worker", "3")
    (worker,) = pod_spec(job(documents, "workers"))["containers"]
    assert worker["args"][worker["args"].index("--trials-per-worker") + 1] == "3"
    (create,) = pod_spec(job(documents, "create"))["containers"]
    assert "--trials-per-worker" not in create["args"]  # it trains nothing
    (worker,) = pod_spec(job(render(capsys), "workers"))["containers"]
    assert "--trials-per-worker" not in worker["args"]  # the study file's [study] value holds
    with pytest.raises(LaunchError, match="--trials-per-worker must be at least 1"):
        KubernetesJob(workers=1, image="hpsearch:latest", trials_per_worker=0)  # the Python API


def test_the_checkpoint_claim_is_shared_read_write_many_unless_one_is_given(capsys):
    (claim,) = by_kind(render(capsys), "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "hpsearch-checkpoints"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    documents = render(capsys, "--checkpoint-pvc", "shared-ckpt", "--data-pvc", "images")
    assert by_kind(documents, "PersistentVolumeClaim") == []
    pod = pod_spec(job(documents, "workers"))
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]
        for volume in pod["volumes"]
        if "persistentVolumeClaim" in volume
    }
    assert claims == {
        "data": {"claimName": "images", "readOnly": True},
        "checkpoints": {"claimName": "shared-ckpt"},
    }
    (worker,) = pod["containers"]
    data = next(mount for mount in worker["volumeMounts"] if mount["name"] == "data")
    assert data["readOnly"] is True
    assert worker["args"][worker["args"].index("--data") + 1] == data["mountPath"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_storage_url_comes_only_from_a_secret_and_no_password_is_written(capsys, variant):
    documents = render(capsys, *VARIANTS[variant])
    assert by_kind(documents, "Secret") == []
    secret = "team-db" if "--storage-secret" in VARIANTS[variant] else "hpsearch-postgres"
    hpsearch = [c for c in containers(documents) if c["image"] == "hpsearch:latest"]
    assert hpsearch
    for container in hpsearch:
        assert env(container)["HPSEARCH_STORAGE"] == {
            "name": "HPSEARCH_STORAGE",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "url"}},
        }
    for container in containers(documents):
        for variable in container.get("env", []):
            if "PASSWORD" in variable["name"] or "STORAGE" in variable["name"]:
                assert "value" not in variable and "secretKeyRef" in variable["valueFrom"]
    text = yaml.safe_dump_all(documents)
    assert "://" not in text and "password:" not in text.lower()  # no URL, no password key


def test_the_rendered_postgresql_is_a_stateful_set_behind_a_cluster_ip_service(capsys):
    documents = render(capsys)
    (database,) = by_kind(documents, "StatefulSet")
    assert database["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    (postgres,) = pod_spec(database)["containers"]
    assert env(postgres)["POSTGRES_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "hpsearch-postgres", "key": "password"}
    }
    (service,) = by_kind(documents, "Service")
    assert service["metadata"]["name"] == "hpsearch-postgres"  # the host in the README's URL
    assert service["spec"]["ports"][0]["port"] == 5432
    assert by_kind(render(capsys, "--storage-secret", "team-db"), "StatefulSet") == []
    # room kept for it beside the workers, and no limit that would kill it on a burst
    assert postgres["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}}


@pytest.mark.parametrize("variant", VARIANTS)
def test_services_are_cluster_ip_only_and_nothing_is_exposed(capsys, variant):
    documents = render(capsys, *VARIANTS[variant])
    assert not by_kind(documents, "Ingress")
    for service in by_kind(documents, "Service"):
        assert service["spec"]["type"] == "ClusterIP"
    for container in containers(documents):
        assert all("hostPort" not in port for port in container.get("ports", []))


def test_the_dashboard_listens_inside_its_pod_behind_a_cluster_ip_service(capsys):
    documents = render(capsys, "--with-dashboard")
    (deployment,) = by_kind(documents, "Deployment")
    (dashboard,) = pod_spec(deployment)["containers"]
    assert dashboard["args"] == ["dashboard", "--host", "0.0.0.0", "--port", "8080"]
    services = {service["metadata"]["name"]: service for service in by_kind(documents, "Service")}
    assert services["hpsearch-dashboard"]["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_config_map_holds_the_resolved_study_file(capsys):
    documents = render(capsys, "--epochs", "5", "--trials", "40")
    (config_map,) = by_kind(documents, "ConfigMap")
    (name, text) = config_map["data"].popitem()
    assert name == "imagenette.toml"
    study = tomllib.loads(text)
    original = tomllib.loads(IMAGENETTE.read_text())
    assert study["study"]["name"] == "imagenette" and study["train"]["epochs"] == 5
    assert (
        study["study"]["trials"] == 40
        and study["space"]["optimizer"] == (original["space"]["optimizer"])
    )
    pod = pod_spec(job(documents, "workers"))
    (study_volume,) = [volume for volume in pod["volumes"] if "configMap" in volume]
    assert study_volume["configMap"]["name"] == config_map["metadata"]["name"]


def test_the_resolved_study_file_loads_as_the_study(tmp_path, capsys):
    (config_map,) = by_kind(render(capsys, "--epochs", "5"), "ConfigMap")
    (name, text) = config_map["data"].popitem()
    (tmp_path / name).write_text(text)
    expected = load_study_config(IMAGENETTE).with_overrides(epochs=5)
    assert load_study_config(tmp_path / name).train == expected.train


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_hpsearch_command_line_is_one_the_parser_accepts(capsys, variant):
    documents = render(capsys, *VARIANTS[variant])
    hpsearch = [c for c in containers(documents) if c["image"] == "hpsearch:latest"]
    assert hpsearch
    for container in hpsearch:
        if "args" in container:  # after the image's entrypoint, `hpsearch`
            build_parser().parse_args(container["args"])
            for name in re.findall(r"\$\((\w+)\)", " ".join(container["args"])):
                assert name in env(container)  # what Kubernetes substitutes, the pod defines
        else:  # the init containers' shell line runs hpsearch status
            assert container["command"][:2] == ["sh", "-c"]
            assert "hpsearch status" in container["command"][2]


def test_workers_wait_for_the_study_that_one_creator_job_makes(capsys):
    documents = render(capsys, "--trials", "40")
    workers = pod_spec(job(documents, "workers"))
    (wait,) = workers["initContainers"]
    assert '--study "$STUDY"' in wait["command"][2] and env(wait)["STUDY"]["value"] == "imagenette"
    creator = job(documents, "create")
    assert "completionMode" not in creator["spec"]
    (create,) = pod_spec(creator)["containers"]
    assert create["args"][:3] == ["run", "/etc/hpsearch/imagenette.toml", "--create-only"]
    assert create["args"][create["args"].index("--trials") + 1] == "40"
    assert "nvidia.com/gpu" not in str(create.get("resources"))
    (rule,) = [
        rule for rule in creator["spec"]["podFailurePolicy"]["rules"] if "onExitCodes" in rule
    ]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2]


def test_the_creator_command_creates_the_study_and_trains_nothing(
    tmp_path, image_folder, capsys, monkeypatch
):
    study = write_study(tmp_path, image_folder, name="k8s-create", trials=3)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    monkeypatch.setenv("HPSEARCH_STORAGE", url)
    status, out, err = run_cli(capsys, "run", study, "--create-only", "--trials", "5")
    assert status == 0, err
    created = optuna.load_study(study_name="k8s-create", storage=url)
    assert created.user_attrs["budget"] == 5
    assert created.trials == []  # no warm start in this study file, and nothing trained
    assert "k8s-create" in out
    status, out, err = run_cli(capsys, "run", study, "--create-only", "--epochs", "9")
    assert status == 2 and "train.epochs" in err  # checked against the study, as run would


@pytest.mark.parametrize(
    ("image_size", "memory"),
    [("32", "2Gi"), ("128", "3Gi"), ("224", "6Gi")],  # a GiB, and twice Imagenette decoded
)
def test_the_creator_asks_for_one_cpu_and_the_decoded_data_s_memory(capsys, image_size, memory):
    documents = render(capsys, "--cpu", "8", "--memory", "32Gi", "--image-size", image_size)
    (create,) = pod_spec(job(documents, "create"))["containers"]
    assert create["resources"] == {
        "requests": {"cpu": "1", "memory": memory},
        "limits": {"memory": "32Gi"},  # the workers', who hold the same images
    }
    assert env(create)["OMP_NUM_THREADS"]["value"] == "1"
    (worker,) = pod_spec(job(documents, "workers"))["containers"]
    assert worker["resources"]["requests"] == {"cpu": "8", "memory": "32Gi"}


def test_the_creator_s_request_stays_within_a_smaller_limit_or_none(capsys):
    (create,) = pod_spec(job(render(capsys, "--memory", "2Gi"), "create"))["containers"]
    assert create["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"memory": "2Gi"},
    }
    (create,) = pod_spec(job(render(capsys), "create"))["containers"]
    assert create["resources"] == {"requests": {"cpu": "1", "memory": "3Gi"}}


def test_a_worker_gives_up_on_a_study_never_created_and_fails_its_job(
    tmp_path, image_folder, capsys, monkeypatch
):
    workers = job(render(capsys, "--namespace", "ml"), "workers")
    (wait,) = pod_spec(workers)["initContainers"]
    assert env(wait)["WAIT_SECONDS"]["value"] == "3600"
    fails_job = {"containerName": wait["name"], "operator": "In", "values": [3]}
    assert {"action": "FailJob", "onExitCodes": fails_job} in (
        workers["spec"]["podFailurePolicy"]["rules"]
    )
    # The init container's shell line as the pod runs it, with this checkout's hpsearch and the
    # wait cut to nothing
    (tmp_path / "bin").mkdir()
    hpsearch = tmp_path / "bin" / "hpsearch"
    hpsearch.write_text(f'#!/bin/sh\nexec {sys.executable} -m search "$@"\n')
    hpsearch.chmod(0o755)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    pod_env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "HPSEARCH_STORAGE": url,
        "STUDY": "k8s-wait",
        "CREATOR_LOGS": env(wait)["CREATOR_LOGS"]["value"],
        "WAIT_SECONDS": "0",
    }
    waited = subprocess.run(wait["command"], env=pod_env, capture_output=True, text=True)
    assert waited.returncode == 3
    assert waited.stderr.strip().splitlines()[-1] == (
        "study k8s-wait was not created within 0 s: its creator failed or still decodes the "
        "data; see kubectl logs job/hpsearch-imagenette-create --namespace ml, and once it is "
        "fixed delete both Jobs and apply them again"
    )
    monkeypatch.setenv("HPSEARCH_STORAGE", url)
    study = write_study(tmp_path, image_folder, name="k8s-wait")
    assert run_cli(capsys, "run", study, "--create-only")[0] == 0
    waited = subprocess.run(wait["command"], env=pod_env, capture_output=True, text=True)
    assert waited.returncode == 0, waited.stderr


def test_output_file(tmp_path, capsys):
    target = tmp_path / "hpsearch.yaml"
    status, out, err = run_cli(capsys, *BASE, "-o", target)
    assert status == 0 and out == "" and str(target) in err
    assert [document["kind"] for document in yaml.safe_load_all(target.read_text())][-1] == "Job"


def test_output_into_a_folder_not_made_yet(tmp_path, capsys):
    target = tmp_path / "manifests" / "hpsearch.yaml"  # made, as every command's -o folders are
    status, out, err = run_cli(capsys, *BASE, "-o", target)
    assert status == 0 and out == "" and str(target) in err
    assert target.is_file()


@pytest.mark.parametrize(
    ("output", "expect"),
    [
        ("folder", "-o {tmp}/folder is a folder; name a file to write, such as"),
        ("a-file/hpsearch.yaml", "{tmp}/a-file is a file, not a folder"),
    ],
)
def test_an_output_that_cannot_be_a_file_is_one_line_exit_2_and_nothing_written(
    tmp_path, capsys, output, expect
):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("not a folder\n")
    before = listing(tmp_path)

    status, out, err = run_cli(capsys, *BASE, "-o", tmp_path / output)

    assert (status, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith("hpsearch: error: ") and expect.format(tmp=tmp_path) in line, line
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    "extra, expect",
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "1000000"], "--workers must be at most 100000"),
        (["--trials-per-worker", "10000"], "--trials-per-worker must be at most 256"),
        (["--image", "hpsearch latest"], "--image"),
        (["--image", "Hpsearch:latest"], "--image"),
        (["--namespace", "ML_team"], "--namespace"),
        (["--namespace", "a" * 64], "--namespace"),
        (["--storage-secret", "Team DB"], "--storage-secret"),
        (["--data-pvc=-images"], "--data-pvc"),
        (["--gpus-per-worker", "2"], "--gpus-per-worker"),
        (["--memory", "lots"], "--memory"),
        (["--epochs", "0"], "epochs"),
    ],
)
def test_bad_flags_are_one_line_exit_2_and_nothing_on_stdout(capsys, extra, expect):
    status, out, err = run_cli(capsys, *BASE, *extra)
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and expect in err


def test_an_unknown_study_key_or_a_local_data_path_is_refused(tmp_path, image_folder, capsys):
    study = tmp_path / "bad.toml"
    study.write_text(IMAGENETTE.read_text().replace("[train]", "[train]\nepochz = 3"))
    status, out, err = run_cli(capsys, "kubernetes", study, *BASE[2:])
    assert (status, out) == (2, "") and len(err.splitlines()) == 1 and "epochz" in err
    local = write_study(tmp_path, image_folder, name="local")
    status, out, err = run_cli(capsys, "kubernetes", local, *BASE[2:])
    assert (status, out) == (2, "") and len(err.splitlines()) == 1 and "--data-pvc" in err
    status, out, err = run_cli(capsys, "kubernetes", local, *BASE[2:], "--data-pvc", "images")
    assert status == 0, err


def test_image_references_with_a_registry_port_and_digest_are_accepted(capsys):
    digest = "sha256:" + "a" * 64
    for image in ("localhost:5000/team/hpsearch:1.0", f"ghcr.io/org/hpsearch@{digest}"):
        status, _, err = run_cli(capsys, *BASE[:-1], image)
        assert status == 0, err
