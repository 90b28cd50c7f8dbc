#!/usr/bin/env bash
# The workflow on a real SLURM: a single-node cluster on localhost (Debian's slurm-wlm and munge) runs
# the tiny cohort's first stages (demo generation, input validation, QSM, T1->SWI registration, for two
# subjects) and a model's training through `--profile profiles/slurm`. The node declares one GPU without
# a device behind it, so the training job's `--gpus=1` is scheduled and allocated for real (torch then
# finds no CUDA and trains on the CPU). Then checks the outputs and SLURM's job-completion records.
#
# Usage (as root): tests/cluster/run_slurm.sh [work-dir]. Idempotent: a fresh cluster state and work
# dir each time, private ports, munge socket and files under $DEEPNUCLEI_SLURM_STATE; it stops only the
# daemons it started (their pid files are there, and their command lines name that folder).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${DEEPNUCLEI_SLURM_STATE:-/tmp/deepnuclei-slurm}
WORK=${1:-$STATE/work}
HOST=$(hostname -s)
export PATH=$ROOT/.venv/bin:$PATH SLURM_CONF=$STATE/slurm.conf DEEPNUCLEI_SLURM_PARTITION=debug
TARGETS=(results/qc/qsm/sub-01/sub-01_desc-sharptv_qsm.png results/qc/qsm/sub-02/sub-02_desc-sharptv_qsm.png
         results/registration/sub-01/sub-01_space-SWI_T1w.nii.gz results/registration/sub-02/sub-02_space-SWI_T1w.nii.gz
         results/models/linus/summary.json)

install_slurm() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

# Jobs find the cluster through /etc/slurm/slurm.conf: snakemake's job step drops SLURM_CONF from the
# environment of the srun it starts inside each job. Linked there unless another config is in place.
link_config() {
    if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$STATE/slurm.conf" ]; then
        echo "/etc/slurm/slurm.conf belongs to another cluster; not replacing it" >&2
        return 1
    fi
    mkdir -p /etc/slurm
    ln -sfn "$STATE/slurm.conf" /etc/slurm/slurm.conf
}

unlink_config() {
    [ "$(readlink /etc/slurm/slurm.conf)" != "$STATE/slurm.conf" ] || rm /etc/slurm/slurm.conf
}

stop_daemons() {
    local pidfile pid
    for pidfile in "$STATE"/run/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$STATE"; then
            kill "$pid"
            for _ in $(seq 50); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
        fi
        rm -f "$pidfile"
    done
}

write_config() {
    cat > "$STATE/slurm.conf" <<CONF
ClusterName=deepnuclei
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
MinJobAge=600
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=20000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    echo "NodeName=$HOST Name=gpu File=/dev/null" > "$STATE/gres.conf"  # a GPU without a device
}

start_daemons() {
    install -d -o munge -g munge "$STATE/munge"
    su -s /bin/sh munge -c "/usr/sbin/munged --socket=$STATE/munge/munge.socket --pid-file=$STATE/munge/munged.pid \
        --log-file=$STATE/munge/munged.log --seed-file=$STATE/munge/munged.seed"
    cp "$STATE/munge/munged.pid" "$STATE/run/munged.pid"
    slurmctld -D -f "$SLURM_CONF" > "$STATE/log/slurmctld.out" 2>&1 &
    slurmd -D -f "$SLURM_CONF" > "$STATE/log/slurmd.out" 2>&1 &
    for _ in $(seq 60); do
        [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && return
        jobs -r | grep -q slurmctld && jobs -r | grep -q slurmd || break  # one of them died
        sleep 1
    done
    echo "the node did not come up idle:" >&2; sinfo >&2 || true; tail "$STATE"/log/*.log >&2; return 1
}

check() {  # check <description> <command...>: fail loudly, or say what passed
    if "${@:2}"; then echo "ok: $1"; else echo "FAILED: $1" >&2; return 1; fi
}

install_slurm
mkdir -p "$STATE/run"
stop_daemons  # a previous run's, if it was killed
rm -rf "$STATE/spool" "$STATE/log" "$STATE/munge" "$WORK"
mkdir -p "$STATE/spool" "$STATE/log" "$WORK"
write_config
link_config
trap 'stop_daemons; unlink_config' EXIT
trap 'exit 1' INT TERM
start_daemons
sinfo

cd "$WORK"
SECONDS=0
snakemake -s "$ROOT/Snakefile" --profile "$ROOT/profiles/slurm" --profile "$ROOT/tests/cluster/profile" \
    --configfile "$ROOT/tests/config/tiny.yaml" -- "${TARGETS[@]}" 2>&1 | tee snakemake.log
elapsed=$SECONDS
echo "snakemake finished in $elapsed s"

jobids=$(grep -o "submitted with SLURM jobid [0-9]*" snakemake.log | awk '{print $NF}')
gpu_job=$(grep "submitted with SLURM jobid" snakemake.log | grep "rule_train" | grep -o "jobid [0-9]*" | awk '{print $2}')
submitted=$(echo "$jobids" | wc -w)
completed=$(grep -c "JobState=COMPLETED.* ExitCode=0:0" "$STATE/log/jobcomp.txt" || true)
steps=$(grep -o "[0-9]* of [0-9]* steps (100%) done" snakemake.log | tail -1)
check "snakemake ran every job: $steps" test -n "$steps"
check "SLURM recorded $completed of $submitted submitted jobs as completed with exit code 0" test "$completed" -eq "$submitted"
for target in "${TARGETS[@]}" results/validation/sub-01_inputs.json results/validation/sub-02_inputs.json; do
    check "output $target" test -s "$target"
done
gpu=$(scontrol -d show job "$gpu_job" | grep -o "TresPerJob=[^ ]*\|JOB_GRES=[^ ]*" | tr '\n' ' ')
check "the training job (SLURM job $gpu_job) asked for a GPU and was allocated one: $gpu" grep -q "JOB_GRES=gpu:1" <<< "$gpu"
check "a second run finds nothing to do" grep -q "Nothing to be done" <(
    snakemake -s "$ROOT/Snakefile" --profile "$ROOT/profiles/slurm" --profile "$ROOT/tests/cluster/profile" \
        --configfile "$ROOT/tests/config/tiny.yaml" -n -- "${TARGETS[@]}" 2>&1)
echo "SLURM summary: $submitted jobs submitted, $completed completed (jobcomp) in $elapsed s; per rule:" \
    $(grep "submitted with SLURM jobid" snakemake.log | grep -o "rule_[a-z0-9_]*" | sort | uniq -c | awk '{printf "%s %s, ", substr($2, 6), $1}')
echo "all checks passed"
