"""The manifests as a cluster meets them: accepted by every Kubernetes release whose API has all
they use, not only the newest (a cluster a year old validates a Job against its own, stricter,
schemas), and, written to a file, said to need their Secret before `kubectl apply`."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.launch.test_kubernetes import BASE, VARIANTS, render, run_cli

# The first release where every field the manifests use is stable: the Job's pod failure policy,
# which lets a drained or preempted worker be replaced without counting a failure, went GA in 1.31
OLDEST_KUBERNETES = "1.31.0"


def test_the_oldest_version_is_one_the_package_ships():
    assert OLDEST_KUBERNETES in kubernetes_validate.utils.all_versions()


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_document_passes_the_oldest_supported_schemas(capsys, variant):
    for document in render(capsys, *VARIANTS[variant]):
        kubernetes_validate.validate(document, OLDEST_KUBERNETES, strict=True)


@pytest.mark.parametrize(
    ("extra", "secret"),
    [
        ([], "kubectl create secret generic hpsearch-postgres"),
        (["--storage-secret", "team-db"], "kubectl create secret generic team-db"),
    ],
)
def test_the_line_after_writing_says_to_create_the_secret_before_applying(
    tmp_path, capsys, extra, secret
):
    target = tmp_path / "hpsearch.yaml"
    status, _, err = run_cli(capsys, *BASE, *extra, "-o", target)
    assert status == 0
    assert secret in err and f"kubectl apply -f {target}" in err
    assert err.index(secret) < err.index("kubectl apply")  # in the order they must run
