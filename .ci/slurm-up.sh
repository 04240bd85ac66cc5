#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster on this host for the SLURM tests: Debian's slurm-wlm and
# munge, daemons started directly (there is no systemd here). Idempotent: when the daemons run and
# the node answers sinfo as usable, it exits at once; daemons that died are started again.
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

node=$(hostname -s)
conf_dir=/etc/slurm
conf=$conf_dir/slurm.conf

node_state() {
    # The node's state as sinfo prints it (idle, mixed, down*, drained, ...), empty if no answer.
    timeout 10 sinfo -h -n "$node" -o %T 2>/dev/null | head -n 1 || true
}

usable() {
    case "$1" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

running() {
    # Is a live (not zombie) process named $1 there?
    ps -C "$1" -o stat= 2>/dev/null | grep -q '^[^Z]'
}

stop() {
    # Stop daemon $1 (pid file $2) and wait for it to go.
    local pids
    pids=$(cat "$2" 2>/dev/null || true)
    [ -n "$pids" ] && kill -0 "$pids" 2>/dev/null || pids=$(ps -C "$1" -o pid= || true)
    [ -n "$pids" ] || return 0
    kill $pids 2>/dev/null || true
    for _ in $(seq 30); do running "$1" || return 0; sleep 0.5; done
    kill -9 $pids 2>/dev/null || true
}

cpus=$(nproc)

slurm_conf() {
    # The slurm.conf this host should have.
    local mem mem_line
    mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n 1)
    mem_line=""
    if [ -n "$mem" ] && [ "$mem" -gt 1024 ]; then
        mem_line="RealMemory=$((mem * 9 / 10))"
    fi
    cat <<EOF
# Written by .ci/slurm-up.sh: a single-node cluster for the hpsearch SLURM tests.
ClusterName=hpsearch
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds (default 120) before it can start again; a job step's
# credential lives as long, and on one node a step starts within a second of it being made.
AuthInfo=cred_expire=5
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
NodeName=$node CPUs=$cpus $mem_line State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

# Already up: nothing to do.
if command -v sinfo >/dev/null && command -v slurmd >/dev/null && [ -f "$conf" ] \
    && [ "$(cat "$conf")" = "$(slurm_conf)" ] \
    && running munged && running slurmctld && running slurmd && usable "$(node_state)"; then
    exit 0
fi

start=$SECONDS

# 1. Packages.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v sinfo >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# 2. munge: key, runtime folders, daemon.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! running munged; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged || runuser -u munge -- /usr/sbin/munged --force
fi
for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
munge -n | unmunge >/dev/null

# 3. slurm.conf for this host.
install -d -m 0755 "$conf_dir"
new_conf=$(slurm_conf)
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$new_conf" ]; then
    printf '%s\n' "$new_conf" >"$conf"
    chmod 0644 "$conf"
    # Running daemons would keep the old configuration: restart them below.
    stop slurmd /run/slurmd.pid
    stop slurmctld /run/slurmctld.pid
fi

# 4. Folders and daemons.
install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
running slurmctld || slurmctld
running slurmd || slurmd

state=""
for _ in $(seq 60); do
    state=$(node_state)
    usable "$state" && break
    case "$state" in
        down | drain* | drained | fail* | "down~")
            scontrol update nodename="$node" state=resume 2>/dev/null || true
            ;;
    esac
    sleep 1
done
if ! usable "$state"; then
    echo ".ci/slurm-up.sh: node $node is '${state:-not answering}' after 60 s" >&2
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    exit 1
fi

echo "slurm-up: $(sinfo -V) node=$node cpus=$cpus state=$state ($((SECONDS - start)) s)"
