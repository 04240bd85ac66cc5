"""`hpsearch kubernetes` as an operator reads and runs it: how to delete one study's run without
what other studies share, a study file that is readable in its ConfigMap whatever its name, and
resource flags a cluster would take but no pod could run with."""

from __future__ import annotations

import re
import sys

import pytest
import yaml

from tests.launch.test_kubernetes import BASE, IMAGENETTE, run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Objects that every study in a namespace shares, which deleting one study's run must keep
SHARED = {"PersistentVolumeClaim", "StatefulSet", "Service", "Deployment"}
KINDS = {"configmap": "ConfigMap"}  # kubectl's lowercase resource names, as manifests spell them


def label_selector(command: str) -> tuple[set[str], str, str]:
    """(kinds, label key, label value) of a `kubectl delete KIND,KIND -l KEY=VALUE` command."""
    found = re.search(r"kubectl delete ([a-z,]+) -l ([^= ]+)=(\S+)", command)
    assert found, command
    kinds = {KINDS.get(kind, kind.capitalize()) for kind in found.group(1).split(",")}
    return kinds, found.group(2), found.group(3)


@pytest.mark.parametrize("extra", [[], ["--with-dashboard", "--namespace", "ml"]])
def test_the_header_says_how_to_delete_this_study_alone(capsys, extra):
    status, out, err = run_cli(capsys, *BASE, *extra)
    assert status == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("#") and "delete" in line]
    kinds, key, value = label_selector(line)
    documents = [document for document in yaml.safe_load_all(out) if document]
    selected = [
        document
        for document in documents
        if document["kind"] in kinds and document["metadata"]["labels"].get(key) == value
    ]
    # the study's ConfigMap and both Jobs, whose pods go with them; nothing shared
    assert sorted(document["kind"] for document in selected) == ["ConfigMap", "Job", "Job"]
    assert not kinds & SHARED
    assert all(document["metadata"]["labels"].get(key) is None for document in documents
               if document["kind"] in SHARED)  # fmt: skip
    if "--namespace" in extra:
        assert line.endswith(" --namespace ml")


def test_the_line_after_writing_says_how_to_delete_this_study_alone(tmp_path, capsys):
    status, _, err = run_cli(capsys, *BASE, "-o", tmp_path / "hpsearch.yaml")
    assert status == 0
    assert "kubectl delete job,configmap -l hpsearch/study=imagenette" in err


def test_a_study_named_in_any_script_is_a_readable_block_in_its_config_map(tmp_path, capsys):
    name = "Größe ResNet-18 sweep"
    study = tmp_path / "grosse.toml"
    study.write_text(IMAGENETTE.read_text().replace('name = "imagenette"', f'name = "{name}"'))
    status, out, err = run_cli(capsys, "kubernetes", study, *BASE[2:])
    assert status == 0, err
    assert "grosse.toml: |" in out and f'name = "{name}"' in out and "\\x" not in out
    (config_map,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "ConfigMap"]
    assert tomllib.loads(config_map["data"]["grosse.toml"])["study"]["name"] == name


@pytest.mark.parametrize(
    "flag, value", [("--cpu", "0"), ("--cpu", "0m"), ("--memory", "0"), ("--memory", "0Gi")]
)
def test_a_zero_cpu_or_memory_is_one_line_exit_2(capsys, flag, value):
    status, out, err = run_cli(capsys, *BASE, flag, value)
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and f"{flag} must be more than 0" in err


def test_with_cpu_and_memory_given_every_container_requests_both(capsys):
    # A namespace whose ResourceQuota counts requests refuses a pod with any container, init
    # containers included, that requests no CPU or memory: the workers' Job then makes no pod
    status, out, err = run_cli(capsys, *BASE, "--with-dashboard", "--cpu", "4", "--memory", "16Gi")
    assert status == 0, err
    containers = {}
    for document in yaml.safe_load_all(out):
        if document and "template" in document.get("spec", {}):
            spec = document["spec"]["template"]["spec"]
            for container in spec["containers"] + spec.get("initContainers", []):
                containers[f"{document['metadata']['name']}/{container['name']}"] = container
    assert len(containers) == 6  # postgres, creator, worker and its wait, dashboard and its wait
    for name, container in containers.items():
        requests = container.get("resources", {}).get("requests", {})
        assert {"cpu", "memory"} <= set(requests), name


@pytest.mark.parametrize("memory", ["100Mi", "512M", "1000Mi"])
def test_a_memory_limit_no_worker_can_start_in_is_one_line_exit_2(capsys, memory):
    status, out, err = run_cli(capsys, *BASE, "--memory", memory)
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and f"--memory {memory} is below 1Gi" in err
    status, _, err = run_cli(capsys, *BASE, "--memory", "1Gi")
    assert status == 0, err


@pytest.mark.parametrize(
    "flag, value, requested",
    [
        ("--memory", "2097152Ki", "2097152Ki"),  # a Ki quantity was a ValueError traceback
        ("--cpu", "1e1", "1e1"),  # Kubernetes' exponent form was refused
        ("--memory", "2.5e9", "2.5e9"),
        ("--cpu", "+4", "+4"),
    ],
)
def test_every_kubernetes_quantity_form_is_taken(capsys, flag, value, requested):
    status, out, err = run_cli(capsys, *BASE, flag, value)
    assert status == 0, err
    workers = [
        d for d in yaml.safe_load_all(out) if d and d["metadata"]["name"].endswith("workers")
    ]
    (container,) = workers[0]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"][flag[2:]] == requested


@pytest.mark.parametrize("value", ["1e999", "-4", "4e", "1Ei3"])
def test_a_quantity_beyond_any_machine_or_malformed_is_one_line_exit_2(capsys, value):
    status, out, err = run_cli(capsys, *BASE, "--cpu", value)
    assert (status, out) == (2, "") and len(err.splitlines()) == 1, err
