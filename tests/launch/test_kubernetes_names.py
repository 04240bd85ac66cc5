"""The names of a study's Kubernetes objects (its ConfigMap and Jobs) and its label: one set per
study name, so that applying one study's manifests never replaces another's objects in the same
namespace; valid names within Kubernetes' limits, read back offline as the other tests do; and
the study's name readable in them."""

from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest
import yaml

from search.launch.kubernetes_objects import DNS_LABEL
from tests.launch.test_kubernetes import (
    IMAGENETTE,
    KUBERNETES_VERSION,
    by_kind,
    job,
    pod_spec,
    run_cli,
)
from tests.launch.test_kubernetes import env as env_of
from tests.launch.test_kubernetes import render as render_imagenette

LONG = "imagenette-ranger-lr-eps-momentum-sweep-2026"
# Names that the old slug (lowercased, punctuation collapsed, cut at 40) made one
ALIKE = {
    "long, apart only at their ends": (f"{LONG}-a", f"{LONG}-b"),
    "capitals and spaces": ("Sweep A", "sweep-a"),
    "punctuation": ("sweep.a", "sweep_a"),
    "nothing but punctuation": ("###", "%%%"),
    "the longest names": ("x" * 127 + "1", "x" * 127 + "2"),
}


def render(tmp_path, capsys, name: str, index: int) -> list[dict]:
    study = tmp_path / f"study-{index}.toml"
    study.write_text(
        IMAGENETTE.read_text().replace('name = "imagenette"', f"name = {json.dumps(name)}")
    )
    argv = ["kubernetes", study, "--workers", "100000", "--image", "hpsearch:latest"]
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    return [document for document in yaml.safe_load_all(out) if document]


def study_objects(documents: list[dict]) -> dict[str, str]:
    """The name of each object of the study's own, by kind and component, and its label."""
    labelled = [
        document for document in documents if "hpsearch/study" in document["metadata"]["labels"]
    ]
    names = {
        f"{document['kind']} {document['metadata']['labels']['app.kubernetes.io/component']}": (
            document["metadata"]["name"]
        )
        for document in labelled
    }
    (label,) = {document["metadata"]["labels"]["hpsearch/study"] for document in labelled}
    return {**names, "label": label}


@pytest.mark.parametrize("names", ALIKE.values(), ids=ALIKE)
def test_studies_whose_names_differ_name_different_objects(tmp_path, capsys, names):
    first, second = (
        study_objects(render(tmp_path, capsys, name, index)) for index, name in enumerate(names)
    )
    assert first.keys() == second.keys() == {
        "ConfigMap study", "Job create", "Job workers", "label"
    }  # fmt: skip
    for key in first:
        assert first[key] != second[key], key


@pytest.mark.parametrize("name", [name for pair in ALIKE.values() for name in pair])
def test_each_name_is_valid_within_kubernetes_limits_and_its_own_references(tmp_path, capsys, name):
    documents = render(tmp_path, capsys, name, 0)
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    objects = study_objects(documents)
    for value in objects.values():
        assert DNS_LABEL.fullmatch(value), value
    # An Indexed Job's pods are named JOB-INDEX-RANDOM with hostname JOB-INDEX, a DNS label: 63
    # characters with an index up to 99999 (what --workers allows)
    assert len(f"{objects['Job workers']}-99999") <= 63
    workers = job(documents, "workers")
    (study_volume,) = [volume for volume in pod_spec(workers)["volumes"] if "configMap" in volume]
    assert study_volume["configMap"]["name"] == objects["ConfigMap study"]
    (wait,) = pod_spec(workers)["initContainers"]
    assert env_of(wait)["STUDY"]["value"] == name  # the study itself, by its exact name
    assert env_of(wait)["CREATOR_LOGS"]["value"] == f"kubectl logs job/{objects['Job create']}"


@pytest.mark.parametrize(
    ("name", "readable"),
    [
        ("Sweep A", r"sweep-a-[0-9a-f]{8}"),
        (f"{LONG}-a", r"imagenette-ranger-lr-eps-moment-[0-9a-f]{8}"),  # 31 + 1 + 8
        ("###", r"study-[0-9a-f]{8}"),
    ],
    ids=["capitals", "long", "punctuation"],
)
def test_a_name_that_is_no_dns_label_is_readable_in_its_objects_names(
    tmp_path, capsys, name, readable
):
    objects = study_objects(render(tmp_path, capsys, name, 0))
    assert re.fullmatch(readable, objects["label"]), objects["label"]
    assert objects["Job workers"] == f"hpsearch-{objects['label']}-workers"


def test_a_name_that_is_a_dns_label_names_its_objects_as_before(capsys):
    documents = render_imagenette(capsys)
    assert study_objects(documents) == {
        "ConfigMap study": "hpsearch-imagenette-study",
        "Job create": "hpsearch-imagenette-create",
        "Job workers": "hpsearch-imagenette-workers",
        "label": "imagenette",
    }
    assert len(by_kind(documents, "Job")) == 2
