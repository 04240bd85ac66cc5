"""The parts of `hpsearch kubernetes`'s manifests: its flags, checked (`KubernetesJob`), and the
objects that do not depend on the study's command lines: labels and metadata, ClusterIP Services,
claims, pods of the hpsearch image, the PostgreSQL StatefulSet and the dashboard Deployment.
Pure functions returning plain dicts; `search.launch.kubernetes` puts them together.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from search.errors import LaunchError
from search.run.log import LOG_FORMATS
from search.studyfile import MAX_TRIALS_PER_WORKER, StudyConfig
from search.studyfile.sections import MAX_TRIALS

APP = "hpsearch"
STUDY_LABEL = "hpsearch/study"  # on each object of one study's run, not on those studies share
STORAGE_KEY = "url"  # the key of the storage URL in the storage Secret
PASSWORD_KEY = "password"  # the key of the PostgreSQL password in the rendered database's Secret
POSTGRES = "hpsearch-postgres"  # StatefulSet, Service and the Secret the user creates
POSTGRES_IMAGE = "postgres:16"  # as in docker-compose.yml
POSTGRES_USER = POSTGRES_DB = "hpsearch"
POSTGRES_CLAIM_SIZE = "10Gi"
POSTGRES_REQUESTS = {"cpu": "500m", "memory": "1Gi"}
# Requests of the containers that only poll or serve, so that a namespace whose ResourceQuota
# counts requests admits their pods (it refuses a pod with any container that asks for none):
# `hpsearch status` peaks at 80 MB. Requests, not limits: a floor for the scheduler, never a kill
WAIT_REQUESTS = {"cpu": "50m", "memory": "128Mi"}
DASHBOARD_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
CHECKPOINT_CLAIM = "hpsearch-checkpoints"  # shared by studies: each has its own folder in it
CHECKPOINT_CLAIM_SIZE = "50Gi"  # a running trial's last.pt is 130-170 MB, plus each best weights
DASHBOARD = "hpsearch-dashboard"
DASHBOARD_PORT = 8080
# Seconds from SIGTERM to SIGKILL: enough to finish a step and write a 130-170 MB checkpoint
# to a network file system, as SLURM's warning gives
GRACE_SECONDS = 180
CREATOR_WAIT_SECONDS = 600  # for a database whose claim is provisioned and image pulled first
# How long a worker pod waits in Init for the study before the workers' Job fails. The creator
# waits up to CREATOR_WAIT_SECONDS for the database, then downloads and decodes the data (a few
# minutes on one CPU, even for imagenette-full), and is retried after a crash: an hour is well
# past all of that going right, and a creator that failed then leaves no worker in Init for good.
STUDY_WAIT_SECONDS = 3600
STUDY_WAIT_EXIT = 3  # the init container's exit status when the study never came: fails the Job
# A worker's exit status when a signal stopped it (`worker --exit-status-if-stopped`): its pod
# then ends Failed, not Succeeded, and the Job replaces it without counting a failure, where an
# exit 0 would mark its index complete and lose the worker for good. 75 is sysexits.h's
# EX_TEMPFAIL, "try again later"; a worker whose study's budget is met still exits 0.
STOPPED_EXIT = 75
SLEEP = "sleep 10"  # between two polls of a waiting init container
FAILURES_PER_WORKER = 2  # crashes and OOM kills the workers' Job tolerates, per worker on average
UID = 1000  # the Dockerfile's non-root user
# Kubernetes refuses an Indexed Job of more completions (at `kubectl apply`, after the creator's
# Job in the same file was made): refused here, before anything is printed
MAX_INDEXED_COMPLETIONS = 100_000
# The least --memory (it is also the limit): a creator's run peaked at 0.95 GiB on 4,000 small
# images (search.launch.kubernetes.creator_memory); a worker holds as much, and a model
MIN_MEMORY = "1Gi"
SHM_SIZE = "2Gi"  # the decoding DataLoader's workers pass batches through /dev/shm
STUDY_DIR, CACHE_DIR, CHECKPOINT_DIR, DATA_DIR = "/etc/hpsearch", "/cache", "/checkpoints", "/data"

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS_LABEL = re.compile(_LABEL)
DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# An image reference as Docker's grammar has it: [registry[:port]/]path[:tag][@digest]
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(
    rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH}(?:/{_PATH})*(?::\w[\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
# Kubernetes' quantities but a negative one: 8, 500m, 32Gi, 1e3 (and 1E, an exa), +4
QUANTITY = re.compile(
    r"\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:[eE](?P<exponent>[+-]?[0-9]+)|(?P<suffix>[KMGTPE]i|[mkMGTPE]))?"
)
_SCALES = {
    "": 1.0,
    "m": 1e-3,
    **{suffix: 1000.0 ** (power + 1) for power, suffix in enumerate("kMGTPE")},
    **{f"{suffix}i": 1024.0 ** (power + 1) for power, suffix in enumerate("KMGTPE")},
}


# The longest slug: `hpsearch-SLUG-workers` is then 57 characters, so that its pods' hostnames,
# the Job's name, "-" and an index of up to 5 digits, stay DNS labels (63)
SLUG_CHARS = 40
DIGEST_CHARS = 8  # hex digits of the name's SHA-256 that keep two studies' slugs apart


def study_slug(config: StudyConfig) -> str:
    """The study's name as a DNS label short enough for its Jobs' pods, one per name: the name
    itself where it is such a label, else the name lowercased, its punctuation made '-' and cut
    short, then the start of its SHA-256, so that `Sweep A` and `sweep-a`, or two long names that
    differ only at their ends, never name (and replace) each other's objects."""
    name = config.study.name
    if len(name) <= SLUG_CHARS and is_label(name):
        return name
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    readable = readable[: SLUG_CHARS - DIGEST_CHARS - 1].strip("-") or "study"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:DIGEST_CHARS]
    return f"{readable}-{digest}"


def object_name(config: StudyConfig, suffix: str) -> str:
    return f"{APP}-{study_slug(config)}-{suffix}"


@dataclass(frozen=True)
class KubernetesJob:
    """The flags of `hpsearch kubernetes`, checked: None leaves a setting to the cluster."""

    workers: int
    image: str
    namespace: str | None = None
    gpus_per_worker: int = 1
    cpu: str | None = None  # a Kubernetes quantity, requested per pod: "8", "500m"
    memory: str | None = None  # requested and the limit, per pod: "32Gi"
    data_pvc: str | None = None  # a claim holding train/ and val/ at its root
    checkpoint_pvc: str | None = None  # else a ReadWriteMany claim is rendered
    storage_secret: str | None = None  # else a PostgreSQL is rendered
    dashboard: bool = False
    trials: int | None = None  # --trials: also the budget of a study that exists
    compile: bool = False
    trials_per_worker: int | None = None  # the workers' --trials-per-worker; None: the study's
    log_format: str = "text"  # the workers' --log-format; a pod's log is never a terminal

    def __post_init__(self) -> None:
        _check_between("--workers", self.workers, 1, MAX_INDEXED_COMPLETIONS)
        if self.trials is not None:  # else the creator's `run --trials` fails in its pod
            _check_between("--trials", self.trials, 1, MAX_TRIALS)
        if self.log_format not in LOG_FORMATS:  # else every worker's pod fails as it starts
            raise LaunchError(
                f"--log-format must be one of {', '.join(LOG_FORMATS)}, but got {self.log_format!r}"
            )
        if self.trials_per_worker is not None:
            _check_between("--trials-per-worker", self.trials_per_worker, 1, MAX_TRIALS_PER_WORKER)
        if self.gpus_per_worker not in (0, 1):
            raise LaunchError(
                f"--gpus-per-worker must be 1 (or 0 to train on the CPU), but got "
                f"{self.gpus_per_worker}: a worker trains on one GPU, so raise --workers instead"
            )
        if len(self.image) > 255 or not IMAGE.fullmatch(self.image):
            raise LaunchError(
                f"--image {self.image!r} is not an image reference such as "
                "registry.example.com/team/hpsearch:1.0 (lowercase path, no spaces)"
            )
        if self.namespace is not None and not is_label(self.namespace):
            raise LaunchError(
                f"--namespace {self.namespace!r} is not a DNS label: at most 63 lowercase "
                "letters, digits and '-', starting and ending with a letter or digit"
            )
        for flag in ("data_pvc", "checkpoint_pvc", "storage_secret"):
            value = getattr(self, flag)
            if value is not None and not (len(value) <= 253 and DNS_SUBDOMAIN.fullmatch(value)):
                raise LaunchError(
                    f"--{flag.replace('_', '-')} {value!r} is not a Kubernetes object name: "
                    "lowercase letters, digits, '-' and '.'"
                )
        for flag in ("cpu", "memory"):
            value = getattr(self, flag)
            if value is not None and not QUANTITY.fullmatch(value):
                raise LaunchError(
                    f"--{flag} {value!r} is not a Kubernetes quantity such as 8, 500m or 32Gi"
                )
            if value is not None and not math.isfinite(quantity_value(value)):
                raise LaunchError(f"--{flag} {value!r} is beyond any machine: give it in Gi or m")
            # 0 reserves nothing, and --cpu 0 would also set the pods' OMP_NUM_THREADS to 0
            if value is not None and quantity_value(value) == 0:
                raise LaunchError(
                    f"--{flag} must be more than 0, but got {value!r}: leave --{flag} out to "
                    "request none"
                )
        if self.memory is not None and quantity_value(self.memory) < quantity_value(MIN_MEMORY):
            raise LaunchError(
                f"--memory {self.memory} is below {MIN_MEMORY}, which Python, torch and the "
                f"decoding workers take before the first batch: every pod would be OOM-killed; "
                f"give at least {MIN_MEMORY}, or leave --memory out to set no limit"
            )


def _check_between(flag: str, value: int, low: int, high: int) -> None:
    if value < low:
        raise LaunchError(f"{flag} must be at least {low}, but got {value}")
    if value > high:
        raise LaunchError(f"{flag} must be at most {high}, but got {value}")


def quantity_value(quantity: str) -> float:
    """A quantity QUANTITY matches, as a number: "32Gi" is 32 * 2**30, "500m" is 0.5, "1e3" 1000."""
    parts = QUANTITY.fullmatch(quantity)
    assert parts is not None, f"{quantity!r} was not checked against QUANTITY"
    number = float(f"{parts['number']}e{parts['exponent'] or 0}")  # inf past a float's range
    return number * _SCALES[parts["suffix"] or ""]


def is_label(text: str) -> bool:
    return len(text) <= 63 and DNS_LABEL.fullmatch(text) is not None


def disruptions_ignored() -> dict[str, Any]:
    # `status` is the API's default, written out: the schemas of Kubernetes 1.34 and before
    # require it, and a validator or an older cluster's client refuses the Job without it
    condition = {"type": "DisruptionTarget", "status": "True"}
    return {"action": "Ignore", "onPodConditions": [condition]}


def on_exit_status(action: str, container: str, exit_status: int) -> dict[str, Any]:
    """A pod failure rule: `container` exiting `exit_status` (never 0: a pod whose containers all
    exited 0 succeeded, and no rule is asked) takes `action`, FailJob or Ignore."""
    codes = {"containerName": container, "operator": "In", "values": [exit_status]}
    return {"action": action, "onExitCodes": codes}


def wait_container(job: KubernetesJob) -> dict[str, Any]:
    """Polls until the storage has Optuna's tables: the dashboard's, which holds no GPU while it
    waits and serves every study, so it waits as long as it takes."""
    return {
        "name": "wait-for-storage",
        "image": job.image,
        "command": ["sh", "-c", f"until hpsearch status > /dev/null; do {SLEEP}; done"],
        "env": [storage_env(job)],
        "resources": {"requests": WAIT_REQUESTS},
    }


def study_wait_container(job: KubernetesJob, study: str, creator: str) -> dict[str, Any]:
    """Polls until the creator Job has made `study`, for STUDY_WAIT_SECONDS at most; then says
    where to look and exits STUDY_WAIT_EXIT, which fails the workers' Job. Names go through the
    environment, so no quoting can break the shell line."""
    script = "\n".join(
        [
            "deadline=$(( $(date +%s) + WAIT_SECONDS ))",
            'until hpsearch status --study "$STUDY" > /dev/null; do',
            '    if [ "$(date +%s)" -ge "$deadline" ]; then',
            '        echo "study $STUDY was not created within $WAIT_SECONDS s: its creator'
            " failed or still decodes the data; see $CREATOR_LOGS, and once it is fixed delete"
            ' both Jobs and apply them again" >&2',
            f"        exit {STUDY_WAIT_EXIT}",
            "    fi",
            f"    {SLEEP}",
            "done",
        ]
    )
    logs = f"kubectl logs job/{creator}" + (
        f" --namespace {job.namespace}" if job.namespace else ""
    )
    env = {"STUDY": study, "CREATOR_LOGS": logs, "WAIT_SECONDS": str(STUDY_WAIT_SECONDS)}
    return {
        "name": "wait-for-study",
        "image": job.image,
        "command": ["sh", "-c", script],
        "env": [storage_env(job)] + [{"name": key, "value": value} for key, value in env.items()],
        "resources": {"requests": WAIT_REQUESTS},
    }


def storage_env(job: KubernetesJob) -> dict[str, Any]:
    secret = {"name": job.storage_secret or POSTGRES, "key": STORAGE_KEY}
    return {"name": "HPSEARCH_STORAGE", "valueFrom": {"secretKeyRef": secret}}


def field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def pod_template(
    component: str,
    job: KubernetesJob,
    config: StudyConfig | None,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    restart: str = "Never",  # a Job's pod failure policy requires Never
) -> dict[str, Any]:
    return {
        "metadata": {"labels": component_labels(component, config)},
        "spec": {
            "restartPolicy": restart,
            # the image's user; volumes (claims, emptyDirs) are made writable by its group
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": UID,
                "runAsGroup": UID,
                "fsGroup": UID,
            },
            "containers": containers,
            "volumes": volumes,
        },
    }


def component_labels(component: str, config: StudyConfig | None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}
    if config is not None:
        labels[STUDY_LABEL] = study_slug(config)
    return labels


def object_metadata(
    name: str, component: str, job: KubernetesJob, config: StudyConfig | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if job.namespace:
        metadata["namespace"] = job.namespace
    metadata["labels"] = component_labels(component, config)
    return metadata


def claim(name: str, access: str, size: str, job: KubernetesJob) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_metadata(name, "checkpoints", job),
        "spec": {"accessModes": [access], "resources": {"requests": {"storage": size}}},
    }


def service(name: str, component: str, port: int, job: KubernetesJob) -> dict[str, Any]:
    """Reachable inside the cluster only: from a laptop, `kubectl port-forward`."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_metadata(name, component, job),
        "spec": {
            "type": "ClusterIP",
            "selector": component_labels(component, None),
            "ports": [{"name": component, "port": port, "targetPort": port}],
        },
    }


def postgres(job: KubernetesJob) -> dict[str, Any]:
    password = {"secretKeyRef": {"name": POSTGRES, "key": PASSWORD_KEY}}
    container = {
        "name": "postgres",
        "image": POSTGRES_IMAGE,
        "env": [
            {"name": "POSTGRES_USER", "value": POSTGRES_USER},
            {"name": "POSTGRES_DB", "value": POSTGRES_DB},
            {"name": "POSTGRES_PASSWORD", "valueFrom": password},
            # a subfolder: a fresh volume's root may hold lost+found, which initdb refuses
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        "ports": [{"name": "postgres", "containerPort": 5432}],
        # Requests, so the scheduler keeps room for it beside the workers; no limit, since a
        # database killed for a burst stops every worker at once. PostgreSQL's defaults bound its
        # use: shared_buffers 128 MB, and at most 100 connections of a few MB each.
        "resources": {"requests": POSTGRES_REQUESTS},
        "readinessProbe": {
            "exec": {"command": ["pg_isready", "-U", POSTGRES_USER, "-d", POSTGRES_DB]},
            "periodSeconds": 5,
        },
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
    }
    data_claim = claim("data", "ReadWriteOnce", POSTGRES_CLAIM_SIZE, job)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_metadata(POSTGRES, "postgres", job),
        "spec": {
            "serviceName": POSTGRES,
            "replicas": 1,
            "selector": {"matchLabels": component_labels("postgres", None)},
            "template": {
                "metadata": {"labels": component_labels("postgres", None)},
                "spec": {"containers": [container]},
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": data_claim["spec"]}],
        },
    }


def dashboard(job: KubernetesJob) -> dict[str, Any]:
    """optuna-dashboard over every study in the storage; it listens on 0.0.0.0 inside its pod
    so that the Service reaches it, and the Service is ClusterIP only."""
    args = ["dashboard", "--host", "0.0.0.0", "--port", str(DASHBOARD_PORT)]
    container = {
        "name": "dashboard",
        "image": job.image,
        "args": args,
        "env": [storage_env(job)],
        "ports": [{"name": "dashboard", "containerPort": DASHBOARD_PORT}],
        "resources": {"requests": DASHBOARD_REQUESTS},
    }
    template = pod_template("dashboard", job, None, [container], [], restart="Always")
    template["spec"]["initContainers"] = [wait_container(job)]
    del template["spec"]["volumes"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_metadata(DASHBOARD, "dashboard", job),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": component_labels("dashboard", None)},
            "template": template,
        },
    }
