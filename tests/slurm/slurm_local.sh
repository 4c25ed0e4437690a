#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests (submitit / hydra-submitit-launcher
# submissions, requeue and signal handling) without a shared cluster.
#
#   bash tests/slurm/slurm_local.sh install   # apt-get install the packages if they are missing (CI)
#   bash tests/slurm/slurm_local.sh start     # configure and start munged, slurmctld, slurmd; wait for the node
#   bash tests/slurm/slurm_local.sh status    # sinfo; exit 0 when the node takes jobs (idle/mixed/allocated)
#   bash tests/slurm/slurm_local.sh stop      # cancel all jobs, stop the daemons
#
# Every subcommand is idempotent: `start` on a running cluster only checks it and prints the node
# line again, `stop` on a stopped one does nothing. Debian/Ubuntu packages, no systemd: the daemons
# are started directly and found again through their pid files (never by process name).
# start/stop/install need root (the daemons run as root, munged as user munge).
#
# Exit codes: 0 ok; 1 the node did not come up / is not usable; 2 usage; 3 SLURM or munge not
# installed; 4 not root.
#
# Environment (all optional):
#   SLURM_LOCAL_WAIT_S     how long `start` waits for the node to become idle (default 30)
#   SLURM_LOCAL_CLUSTER    ClusterName (default vaelab)
#   SLURM_LOCAL_PARTITION  name of the single, default partition (default debug)
set -euo pipefail

# The daemons live in /usr/sbin, which a non-root PATH often lacks.
export PATH="$PATH:/usr/sbin:/sbin"

WAIT_S="${SLURM_LOCAL_WAIT_S:-30}"
CLUSTER="${SLURM_LOCAL_CLUSTER:-vaelab}"
PARTITION="${SLURM_LOCAL_PARTITION:-debug}"
PACKAGES=(slurmctld slurmd slurm-client munge)

# Debian's slurm is built with /etc/slurm as its configuration directory; every client command
# (sbatch, sinfo, ...) reads slurm.conf from there too, so no SLURM_CONF is needed.
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
STATE_DIR=/var/lib/slurm/slurmctld   # StateSaveLocation: job/node state survives a stop/start
SPOOL_DIR=/var/lib/slurm/slurmd      # SlurmdSpoolDir: batch scripts of running jobs
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge                 # munged's socket and pid file; must belong to munge
MUNGE_PID="$MUNGE_RUN/munged.pid"

log() { echo "slurm_local: $*" >&2; }
die() { echo "error: $1" >&2; exit "${2:-1}"; }

need_root() { [[ $EUID -eq 0 ]] || die "slurm_local.sh $1 must run as root (the daemons run as root)" 4; }

missing_binaries() {
    local b missing=()
    for b in munged slurmctld slurmd sinfo sbatch scontrol squeue scancel; do
        command -v "$b" >/dev/null 2>&1 || missing+=("$b")
    done
    echo "${missing[*]}"
}

need_binaries() {
    local missing
    missing="$(missing_binaries)"
    [[ -z "$missing" ]] || die "SLURM is not installed (missing: $missing); run: apt-get install slurmctld slurmd slurm-client munge (or: bash tests/slurm/slurm_local.sh install)" 3
}

# alive PIDFILE COMM: the process named in PIDFILE runs and is COMM (a stale pid file, or a pid
# reused by another program after a reboot, does not count).
alive() {
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(<"$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]]
}

# stop_pidfile PIDFILE COMM: SIGTERM the daemon, wait up to 15 s, then SIGKILL it.
stop_pidfile() {
    local pid i
    alive "$1" "$2" || { rm -f "$1"; return 0; }
    pid="$(<"$1")"
    log "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$2 (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

# ---------------------------------------------------------------------------------------- munge
start_munge() {
    # munged refuses to run unless its directories belong to it and are not group/world writable.
    install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
    install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    if [[ ! -s "$MUNGE_KEY" ]]; then
        # The Debian package creates a key on install; make one if it is gone.
        log "creating $MUNGE_KEY"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY"
        elif command -v create-munge-key >/dev/null 2>&1; then
            create-munge-key -f
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
    fi
    # munged also refuses a key that is readable by anyone but its owner.
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
    if alive "$MUNGE_PID" munged; then
        return 0
    fi
    log "starting munged"
    # runuser (util-linux) needs no PAM session or password; munged forks into the background.
    runuser -u munge -- munged
    # Round trip a credential so a broken munge shows up here, not as "Zero Bytes were
    # transmitted or received" from every slurm command later.
    local i
    for ((i = 0; i < 50; i++)); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged does not answer (see /var/log/munge/munged.log)"
}

# --------------------------------------------------------------------------------------- config
# Writes slurm.conf to stdout. The node line comes from `slurmd -C` (what slurmd will report
# when it registers), so the node is never drained for "Low RealMemory" / "Low CPUs".
render_conf() {
    local node_line host realmem cpus defmem
    host="$(hostname -s)"
    node_line="$(slurmd -C | head -n 1)"
    [[ "$node_line" == NodeName=* ]] || die "unexpected 'slurmd -C' output: $node_line"
    realmem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")"
    cpus="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")"
    defmem=$((realmem / cpus))
    cat <<EOF
# Written by tests/slurm/slurm_local.sh; rewritten on every \`start\` (edit the script, not this file).
# A one-node test cluster: this host runs slurmctld and slurmd.
ClusterName=$CLUSTER
SlurmctldHost=$host

# The daemons run as root (the script runs as root): no state/log directories to chown to the
# slurm user. slurmd must be root anyway to start jobs as their submitting user.
SlurmUser=root
SlurmdUser=root

# munged authenticates every RPC between the commands and the daemons.
AuthType=auth/munge
CredType=cred/munge

# No cgroups here (containers/VMs rarely delegate them): track job processes by parent pid and
# do no CPU binding. Consequence: --mem is a scheduling request only, nothing enforces it.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Plain srun steps; no PMI/PMIx (the Debian pmix plugin logs a harmless load error at start).
MpiDefault=none

# Allocate cores and memory as consumable resources, so several small jobs share the node
# (with the default select/linear a job takes the whole node).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# A job without --mem would otherwise be given all of the node's memory and run alone;
# give it its share per CPU instead.
DefMemPerCPU=$defmem
# Reject at submission a job this node can never run (e.g. -c 4 on a 2-CPU node), instead of
# accepting it to pend forever with Reason=PartitionConfig.
EnforcePartLimits=ALL

# No slurmdbd: no accounting, so \`sacct\` does not work (use squeue / scontrol show job).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none

# Where state lives; these directories must exist (the script creates them).
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No mail on this machine (the default /bin/mail is missing and logs an error at every start).
MailProg=/bin/true

# A node that was DOWN (e.g. slurmd stopped longer than SlurmdTimeout, or the daemons
# restarted in another order) returns to service as soon as slurmd registers with a valid
# configuration, instead of waiting for an admin.
ReturnToService=2
SlurmdTimeout=60

# Batch jobs may be requeued (sbatch --requeue is the default; submitit's preemption/timeout
# handling calls \`scontrol requeue\`). A requeued job keeps its job id and gets
# SLURM_RESTART_COUNT=1, 2, ... in its environment.
JobRequeue=1
# A requeued job is held (Reason=BeginTime) for the job credential lifetime, 120 s by default;
# 10 s is plenty to launch a step on this machine and makes the requeue test ~2 minutes faster.
AuthInfo=cred_expire=10
# A requeued job becoming eligible again is no scheduling event: it waits for the periodic
# scheduler pass (main: 60 s, backfill: 30 s by default). One node, a few jobs: pass often.
SchedulerParameters=sched_interval=5,bf_interval=5
# Finished jobs stay visible to squeue/scontrol for this many seconds (default 300): long
# enough for a test to read the final state, short enough that the queue is not cluttered.
MinJobAge=60
# Seconds between SIGTERM and SIGKILL when a job is cancelled, requeued or hits its time limit
# (default 30): time for a job to write a checkpoint, short enough for tests.
KillWait=10
# Defaults, stated: jobs whose srun/salloc client went away are not killed (InactiveLimit=0),
# and when the first task of a step exits the others are not timed out (Waittime=0).
InactiveLimit=0
Waittime=0

$node_line State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

# Writes slurm.conf if its content changed, and then sets CONF_CHANGED=1. (A global, not the
# return status: `set -e` is off inside a function called as an if/&& condition.)
CONF_CHANGED=0
write_conf() {
    local tmp
    install -d -m 0755 "$CONF_DIR" "$LOG_DIR"
    install -d -m 0755 "$STATE_DIR" "$SPOOL_DIR"
    tmp="$(mktemp "$CONF_DIR/.slurm.conf.XXXXXX")"
    render_conf >"$tmp"
    if [[ -f "$CONF" ]] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return 0
    fi
    chmod 0644 "$tmp"   # the client commands of every user read it
    mv -f "$tmp" "$CONF"
    CONF_CHANGED=1
    log "wrote $CONF"
}

# ---------------------------------------------------------------------------------------- slurm
node_name() { slurmd -C | head -n 1 | sed 's/^NodeName=\([^ ]*\).*/\1/'; }

# State of our node as sinfo prints it (idle, mixed, allocated, down*, drained, ...), or empty
# when slurmctld does not answer.
node_state() { sinfo -h -N -n "$1" -o %T 2>/dev/null | head -n 1 || true; }

start_slurmctld() {
    alive "$CTLD_PID" slurmctld && return 0
    log "starting slurmctld"
    # No -c: keep the saved job state (a requeued or pending job survives a restart).
    slurmctld
    local i
    for ((i = 0; i < WAIT_S * 10; i++)); do
        scontrol ping 2>/dev/null | grep -q 'is UP' && return 0
        sleep 0.1
    done
    die "slurmctld did not come up in ${WAIT_S}s (see $LOG_DIR/slurmctld.log)"
}

start_slurmd() {
    alive "$SLURMD_PID" slurmd && return 0
    log "starting slurmd"
    slurmd
}

wait_node() {
    local node="$1" state="" resumed=0 deadline=$((SECONDS + WAIT_S))
    while ((SECONDS < deadline)); do
        state="$(node_state "$node")"
        case "$state" in
            idle | mixed | allocated | completing)
                return 0 ;;
            down | drain* | drained | fail*)
                # Responding, but taken out of service (e.g. drained for "Kill task failed" or a
                # config mismatch before the rewrite, or down after a restart): put it back once.
                if ((resumed == 0)); then
                    log "node $node is $state ($(sinfo -h -N -n "$node" -o %E)); resuming it"
                    scontrol update nodename="$node" state=resume || true
                    resumed=1
                fi ;;
        esac
        # Anything else (empty, unknown*, idle*, down*) means slurmd has not registered yet.
        sleep 0.2
    done
    die "node $node is '${state:-unreachable}' after ${WAIT_S}s (see $LOG_DIR/slurmctld.log, $LOG_DIR/slurmd.log)"
}

cmd_start() {
    need_root start
    need_binaries
    start_munge
    write_conf
    if ((CONF_CHANGED)); then
        # The node definition (CPUs, memory) changed or the config is new: daemons already running
        # with the old one must be restarted (scontrol reconfigure does not change nodes).
        if alive "$CTLD_PID" slurmctld || alive "$SLURMD_PID" slurmd; then
            log "configuration changed; restarting slurmctld and slurmd"
            stop_pidfile "$SLURMD_PID" slurmd
            stop_pidfile "$CTLD_PID" slurmctld
        fi
    fi
    start_slurmctld
    start_slurmd
    local node
    node="$(node_name)"
    wait_node "$node"
    sinfo -h -N -n "$node" -o '%N %c %m %R %T' |
        awk '{ printf "slurm_local: node %s cpus=%s memory_mb=%s partition=%s state=%s\n", $1, $2, $3, $4, $5 }'
}

cmd_stop() {
    need_root stop
    if [[ -n "$(missing_binaries)" ]]; then
        log "SLURM is not installed; nothing to stop"
        return 0
    fi
    if alive "$CTLD_PID" slurmctld && scontrol ping 2>/dev/null | grep -q 'is UP'; then
        local jobs i
        jobs="$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')"
        if [[ -n "${jobs// /}" ]]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            scancel $jobs || true
            # Let slurmd deliver SIGTERM, KillWait, SIGKILL and clean up (bounded).
            for ((i = 0; i < 300; i++)); do
                # squeue lists only unfinished jobs (pending, running, completing, ...) by default
                [[ -z "$(squeue -h -o %A 2>/dev/null)" ]] && break
                sleep 0.1
            done
        fi
    fi
    # slurmd first (no job steps left), then the controller, then munge which both use.
    stop_pidfile "$SLURMD_PID" slurmd
    stop_pidfile "$CTLD_PID" slurmctld
    stop_pidfile "$MUNGE_PID" munged
    log "stopped"
}

cmd_status() {
    need_binaries
    local node state
    if ! sinfo 2>&1; then
        return 1
    fi
    node="$(node_name)"
    state="$(node_state "$node")"
    case "$state" in
        idle | mixed | allocated | completing) return 0 ;;
        *) echo "node $node is '${state:-unknown}'" >&2; return 1 ;;
    esac
}

cmd_install() {
    need_root install
    if [[ -z "$(missing_binaries)" ]]; then
        log "already installed: $(slurmctld -V)"
        return 0
    fi
    # --no-install-recommends: the recommends pull in every plugin's -dev package.
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    install) cmd_install ;;
    *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
esac
