"""`hpsearch kubernetes`: a study's workers as Kubernetes manifests, for `kubectl apply -f`.

Pure functions from the study and the flags to plain dicts, one per object; `render` turns them
into one YAML stream. Nothing here talks to a cluster or a database.

What runs, in order, though Kubernetes starts it all at once:
- a Job of one pod, `hpsearch run STUDY --create-only`: it waits for the database, decodes the
  data for its fingerprint, creates the study (or checks the study file against it), sets
  `--trials`, and exits. It trains nothing, so it asks for one CPU and the decoded data's memory,
  not the workers' resources. One creator, because N pods creating Optuna's tables at once race
  in PostgreSQL's catalogue; a mistake of the user's (exit 2: another study of that name, a bad
  URL) fails the Job at once instead of retrying.
- an Indexed Job of N workers, `hpsearch worker STUDY`. `worker` never creates a study, so each
  pod's init container polls `hpsearch status --study NAME` until the creator has made it; a
  pod that waits costs no GPU time that a failing, restarting one would not, and needs no order
  that Kubernetes does not give. After an hour without the study (its creator failed) the init
  container says where to look and fails the workers' Job, so no pod waits in Init for good. A
  preempted, evicted or drained pod is replaced without counting as a failure: SIGTERM gives its
  worker the grace period to write the last finished epoch and queue its trial, which any worker
  then resumes from the shared claim, and the worker exits STOPPED_EXIT, which the pod failure
  policy ignores (as it does DisruptionTarget). Exiting 0 would end the pod Succeeded, which no
  rule of the policy reads, and complete its index: each drain would remove a worker for good.

The storage URL reaches every pod only through a Secret the user made (`secretKeyRef`): the
YAML holds no password and no Secret. The dashboard, which has no login, is a ClusterIP Service
reached with `kubectl port-forward`, never a LoadBalancer, NodePort or Ingress.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import Any

import tomli_w
import yaml

from search.errors import USER_ERROR_EXIT, LaunchError
from search.launch.kubernetes_objects import (
    CACHE_DIR,
    CHECKPOINT_CLAIM,
    CHECKPOINT_CLAIM_SIZE,
    CHECKPOINT_DIR,
    CREATOR_WAIT_SECONDS,
    DASHBOARD,
    DASHBOARD_PORT,
    DATA_DIR,
    FAILURES_PER_WORKER,
    GRACE_SECONDS,
    PASSWORD_KEY,
    POSTGRES,
    POSTGRES_DB,
    POSTGRES_USER,
    SHM_SIZE,
    STOPPED_EXIT,
    STORAGE_KEY,
    STUDY_DIR,
    STUDY_LABEL,
    STUDY_WAIT_EXIT,
    KubernetesJob,
    claim,
    component_labels,
    dashboard,
    disruptions_ignored,
    field_env,
    object_metadata,
    object_name,
    on_exit_status,
    pod_template,
    postgres,
    quantity_value,
    service,
    storage_env,
    study_wait_container,
)
from search.studyfile import StudyConfig
from search.studyfile.document import to_document
from trainer.data import cache_side
from trainer.source_names import IMAGENETTE

# The creator's requests (creator_memory says why)
CREATOR_CPU = "1"
IMAGENETTE_IMAGES = 13_394  # 9,469 train and 3,925 val, at every resolution
GIB = 2**30


def secret_command(job: KubernetesJob) -> str:
    """The kubectl command that makes the Secret the manifests read the storage URL from, which
    no manifest holds: without it every pod waits on a missing Secret."""
    secret = job.storage_secret or POSTGRES
    if job.storage_secret:
        create = f"kubectl create secret generic {secret} --from-literal={STORAGE_KEY}=URL"
    else:
        create = (
            f"kubectl create secret generic {secret} --from-literal={PASSWORD_KEY}=PASSWORD "
            f"--from-literal={STORAGE_KEY}=postgresql+psycopg://{POSTGRES_USER}:PASSWORD@"
            f"{POSTGRES}:5432/{POSTGRES_DB}"
        )
    return create + _namespace_flag(job)


def delete_command(config: StudyConfig, job: KubernetesJob) -> str:
    """The kubectl command that removes this study's run and nothing else. `kubectl delete -f`
    of the file would also delete what every study in the namespace shares: the PostgreSQL the
    other studies' workers are writing to, and the checkpoint claim, with their checkpoints and
    kept weights (a provisioned volume is deleted with its claim)."""
    label = component_labels("workers", config)[STUDY_LABEL]
    return f"kubectl delete job,configmap -l {STUDY_LABEL}={label}" + _namespace_flag(job)


def _namespace_flag(job: KubernetesJob) -> str:
    return f" --namespace {job.namespace}" if job.namespace else ""


def render(config: StudyConfig, job: KubernetesJob) -> str:
    """The manifests as one YAML stream, after a comment that says what to create first and
    how to delete this study's run alone."""
    header = (
        f"# hpsearch kubernetes: study {config.study.name!r}, {job.workers} worker(s).\n"
        f"# First, once: {secret_command(job)}\n"
        f"# To delete this study's run, not the database and checkpoints that studies share "
        f"(as `kubectl delete -f` would): {delete_command(config, job)}\n"
    )
    documents = manifests(config, job)
    # allow_unicode: a study name or comment such as "Über" stays readable in the ConfigMap's
    # block, where PyYAML would otherwise quote the whole file on one line of escapes
    return header + yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """Safe YAML that writes a text of several lines (the study file) as a `|` block."""


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _text)


def manifests(config: StudyConfig, job: KubernetesJob) -> list[dict[str, Any]]:
    """Every object, in the order `kubectl apply` should meet them."""
    source = config.data.source
    if job.data_pvc is None and source not in IMAGENETTE:
        raise LaunchError(
            f"the study's data {source!r} is a path on this machine, which the pods cannot see: "
            "give --data-pvc NAME, a claim holding train/ and val/, or an Imagenette name"
        )
    documents = [study_config_map(config, job)]
    if job.checkpoint_pvc is None:
        documents.append(claim(CHECKPOINT_CLAIM, "ReadWriteMany", CHECKPOINT_CLAIM_SIZE, job))
    if job.storage_secret is None:
        documents += [service(POSTGRES, "postgres", 5432, job), postgres(job)]
    documents += [creator_job(config, job), workers_job(config, job)]
    if job.dashboard:
        documents += [dashboard(job), service(DASHBOARD, "dashboard", DASHBOARD_PORT, job)]
    return documents


def study_file_name(config: StudyConfig) -> str:
    name = PurePosixPath(str(config.path)).name
    return name if re.fullmatch(r"[-._a-zA-Z0-9]+\.toml", name) else "study.toml"


def study_file_text(config: StudyConfig) -> str:
    """The study as resolved (--trials, --epochs, --image-size applied; never a storage URL)."""
    tables = {
        section: _without_none(table)
        for section, table in to_document(config).items()
        if table != []  # an empty [[warm_start]] or [[points]] is no table at all
    }
    return f"# {config.path}, as `hpsearch kubernetes` resolved it\n" + tomli_w.dumps(tables)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


def study_config_map(config: StudyConfig, job: KubernetesJob) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_metadata(object_name(config, "study"), "study", job, config),
        "data": {study_file_name(config): study_file_text(config)},
    }


def creator_job(config: StudyConfig, job: KubernetesJob) -> dict[str, Any]:
    args = [
        "run", f"{STUDY_DIR}/{study_file_name(config)}", "--create-only", *_data_args(config, job),
        "--device", "cpu", "--no-progress", "--wait-for-storage", str(CREATOR_WAIT_SECONDS),
        *(["--trials", str(job.trials)] if job.trials is not None else []),
    ]  # fmt: skip
    container = _hpsearch_container("create", args, job, _creator_resources(config, job))
    spec = {
        "backoffLimit": 3,
        "podFailurePolicy": {
            "rules": [on_exit_status("FailJob", "create", USER_ERROR_EXIT), disruptions_ignored()]
        },
        "template": pod_template("create", job, config, [container], _volumes(job, config)),
    }
    return _job(object_name(config, "create"), "create", job, config, spec)


def workers_job(config: StudyConfig, job: KubernetesJob) -> dict[str, Any]:
    args = [
        "worker", f"{STUDY_DIR}/{study_file_name(config)}", *_data_args(config, job),
        "--checkpoint-dir", CHECKPOINT_DIR, "--device", "cuda" if job.gpus_per_worker else "cpu",
        "--no-progress", "--log-format", job.log_format,
        "--exit-status-if-stopped", str(STOPPED_EXIT),
        *(["--compile"] if job.compile else []),
        *(["--trials-per-worker", str(job.trials_per_worker)] if job.trials_per_worker else []),
    ]  # fmt: skip
    worker = _hpsearch_container("worker", args, job, _worker_resources(job))
    worker["volumeMounts"].append({"name": "checkpoints", "mountPath": CHECKPOINT_DIR})
    wait = study_wait_container(job, config.study.name, object_name(config, "create"))
    template = pod_template("workers", job, config, [worker], _volumes(job, config, True))
    template["spec"]["initContainers"] = [wait]
    template["spec"]["terminationGracePeriodSeconds"] = GRACE_SECONDS
    if job.gpus_per_worker:  # GPU nodes are often tainted so that only GPU pods land there
        template["spec"]["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    spec = {
        "completionMode": "Indexed",
        "completions": job.workers,
        "parallelism": job.workers,
        # A worker exits 0 once the study's budget is met, which completes its index; a crash or
        # an OOM kill is retried up to this many times over all pods, while a worker stopped by a
        # signal (preemption, eviction, a drain, `kubectl delete pod`) is replaced, never counted.
        "backoffLimit": FAILURES_PER_WORKER * job.workers,
        "podFailurePolicy": {
            "rules": [
                on_exit_status("FailJob", wait["name"], STUDY_WAIT_EXIT),
                on_exit_status("Ignore", worker["name"], STOPPED_EXIT),
                disruptions_ignored(),
            ]
        },
        "template": template,
    }
    return _job(object_name(config, "workers"), "workers", job, config, spec)


def _data_args(config: StudyConfig, job: KubernetesJob) -> list[str]:
    data = DATA_DIR if job.data_pvc else config.data.source
    return ["--data", data, "--cache-dir", CACHE_DIR]


def _hpsearch_container(
    name: str, args: list[str], job: KubernetesJob, resources: dict[str, Any]
) -> dict[str, Any]:
    """A container of the hpsearch image: the Dockerfile's entrypoint is `hpsearch`, so `args` is
    the command line after it."""
    env = [storage_env(job), field_env("POD_NAME", "metadata.name")]
    if not job.data_pvc:  # an Imagenette download goes to the pod's scratch volume
        env.append({"name": "HPSEARCH_DATA_ROOT", "value": f"{CACHE_DIR}/data"})
    cpu = resources.get("requests", {}).get("cpu")
    if cpu is not None and cpu.isdigit():  # torch's threads: the pod's CPUs, not the node's
        env.append({"name": "OMP_NUM_THREADS", "value": cpu})
    mounts = [
        {"name": "study", "mountPath": STUDY_DIR, "readOnly": True},
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "shm", "mountPath": "/dev/shm"},
    ]
    if job.data_pvc:
        mounts.append({"name": "data", "mountPath": DATA_DIR, "readOnly": True})
    container: dict[str, Any] = {"name": name, "image": job.image, "args": args, "env": env}
    if resources:
        container["resources"] = resources
    return {**container, "volumeMounts": mounts}


def _worker_resources(job: KubernetesJob) -> dict[str, Any]:
    # CPU is requested, not limited (a limit throttles); memory is both, so the scheduler and
    # the OOM killer agree; a GPU is an extended resource, given as a limit.
    requests = {key: value for key, value in (("cpu", job.cpu), ("memory", job.memory)) if value}
    limits: dict[str, Any] = {"memory": job.memory} if job.memory else {}
    if job.gpus_per_worker:
        limits["nvidia.com/gpu"] = job.gpus_per_worker
    return _nonempty(requests, limits)


def _creator_resources(config: StudyConfig, job: KubernetesJob) -> dict[str, Any]:
    """`run --create-only` trains nothing but decodes every image once, for the data's
    fingerprint: one CPU (a request, so its decoding workers may use a node's idle ones) and the
    memory of the decoded images. The limit, where --memory gives one, is the workers': they hold
    the same images, and more."""
    memory = creator_memory(config)
    if job.memory and quantity_value(job.memory) < quantity_value(memory):
        memory = job.memory  # a request may not exceed its limit
    limits = {"memory": job.memory} if job.memory else {}
    return _nonempty({"cpu": CREATOR_CPU, "memory": memory}, limits)


def creator_memory(config: StudyConfig) -> str:
    """Measured: 0.95 GiB at the peak (PSS of the process and its 2 decoding workers) for 4,000
    images at image_size 128, 0.25 GiB of them decoded. Asked: a GiB for Python, torch and up to
    8 decoding workers, and twice the decoded images (those, and the training part that
    per_class or validation_fraction copy). Counted for Imagenette; a claim of more images needs
    more, which a request, unlike a limit, lets the pod use where the node has it."""
    side = cache_side(config.data.image_size)
    decoded = IMAGENETTE_IMAGES * 3 * side * side  # uint8 squares
    return f"{math.ceil((GIB + 2 * decoded) / GIB)}Gi"


def _nonempty(requests: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def _volumes(
    job: KubernetesJob, config: StudyConfig, checkpoints: bool = False
) -> list[dict[str, Any]]:
    volumes = [
        {"name": "study", "configMap": {"name": object_name(config, "study")}},
        {"name": "cache", "emptyDir": {}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
    ]
    if job.data_pvc:
        volumes.append(
            {"name": "data", "persistentVolumeClaim": {"claimName": job.data_pvc, "readOnly": True}}
        )
    if checkpoints:
        claim = job.checkpoint_pvc or CHECKPOINT_CLAIM
        volumes.append({"name": "checkpoints", "persistentVolumeClaim": {"claimName": claim}})
    return volumes


def _job(
    name: str, component: str, job: KubernetesJob, config: StudyConfig, spec: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": object_metadata(name, component, job, config),
        "spec": spec,
    }
