#!/usr/bin/env bash
# A throwaway Slurm cluster on this machine, for the tests and for trying
# `--executor slurm` without a cluster: one slurmctld and NODES slurmd
# processes (each its own node, all on localhost with their own port), and
# a private munged.  Every file (config, munge key, sockets, spool, logs,
# pid files) lives under DIR; nothing system-wide is touched beyond the
# Debian packages slurm-wlm and munge.
#
# Memory limits (--mem) are enforced without cgroups, which a container
# rarely lets slurmd set up: jobacct_gather/linux samples each task's
# processes every second and OverMemoryKill kills a step whose resident
# memory went over its limit, so a task must stay over it for about a
# second to be caught.  No accounting database: `sacct` has nothing here;
# jobcomp/filetxt keeps finished jobs in DIR/log/jobcomp.txt.
#
#   scripts/slurm-local.sh start DIR [NODES]   # prints the SLURM_CONF to export
#   scripts/slurm-local.sh stop DIR
#   scripts/slurm-local.sh install             # apt-get the two packages
#
# start exits 77 (the ctest "skipped" code) when Slurm cannot be started
# here (packages missing, a daemon refusing to run), so a test can skip.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR [NODES] | stop DIR | install" >&2
  exit 2
}

skip() {
  echo "slurm-local: cannot start Slurm here: $*" >&2
  exit 77
}

cmd=${1:-}
case "$cmd" in
install)
  export DEBIAN_FRONTEND=noninteractive
  for _ in 1 2 3 4 5; do
    apt-get install -y slurm-wlm munge && exit 0
    sleep 10 # the dpkg lock may be held by another install
  done
  exit 1
  ;;
start | stop) ;;
*) usage ;;
esac
[ $# -ge 2 ] || usage
dir=$(mkdir -p "$2" && cd "$2" && pwd)
nodes=${3:-2}

stop_pidfile() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

if [ "$cmd" = stop ]; then
  # Running jobs' step daemons belong to slurmd: end the jobs first.
  if [ -f "$dir/slurm.conf" ] && command -v scancel >/dev/null; then
    SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
  fi
  for f in "$dir"/run/slurmd-*.pid; do stop_pidfile "$f"; done
  stop_pidfile "$dir/run/slurmctld.pid"
  stop_pidfile "$dir/run/munged.pid"
  exit 0
fi

for b in munged mungekey slurmctld slurmd sbatch; do
  command -v "$b" >/dev/null || skip "$b not installed (scripts/slurm-local.sh install)"
done

mkdir -p "$dir"/{run,log,spool/ctld,munge}
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Ports: slurmctld on BASE, node n on BASE+n, below Linux's ephemeral
# range (32768 and up), where any process's outgoing or port-0 socket (the
# HTTP test servers running beside the Slurm tests) may hold them.  BASE
# starts from a hash of the folder and moves up past ports something
# already listens on: two folders' hashes can fall within NODES of each
# other (the Slurm tests run in parallel, and other checkouts' beside
# them).  A machine-wide lock, held until this cluster's daemons listen
# (the script's end), keeps two clusters starting at once from both taking
# the same free ports; the daemons are started without its descriptor
# (9>&-), or they would hold it for their lives.  A cluster already
# running keeps its ports.
exec 9>/tmp/vlmcurate-slurm-local.lock
flock 9
listening() {
  local _ local_addr st
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | while read -r _ local_addr _ st _; do
    if [ "$st" = 0A ]; then echo $((16#${local_addr##*:})); fi
  done
}
ports_free() {
  local p
  for p in $(seq "$1" $(($1 + nodes))); do
    case " $used " in *" $p "*) return 1 ;; esac
  done
}
if running "$dir/run/slurmctld.pid" && [ -f "$dir/slurm.conf" ]; then
  base=$(sed -n 's/^SlurmctldPort=//p' "$dir/slurm.conf")
else
  base=$((20000 + $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 12000))
  used=$(listening | tr '\n' ' ')
  while ! ports_free "$base"; do
    base=$((20000 + (base - 20000 + nodes + 1) % 12000))
  done
fi
for n in $(seq "$nodes"); do mkdir -p "$dir/spool/n$n"; done
user=$(id -un)
cores=$(nproc)
mem=$(awk '/MemTotal/ { print int($2 / 1024 / 2) }' /proc/meminfo)

# munged insists that its key is private to its user and that its socket's
# folder can be traversed by every client.
chmod 711 "$dir/munge"
if [ ! -f "$dir/munge/munge.key" ]; then
  mungekey --create --keyfile="$dir/munge/munge.key" --force >/dev/null
fi
chmod 400 "$dir/munge/munge.key"
sock="$dir/munge/munge.socket"
if ! { [ -f "$dir/run/munged.pid" ] && kill -0 "$(cat "$dir/run/munged.pid")" 2>/dev/null; }; then
  munged 9>&- --force --socket="$sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munge.seed" ||
    skip "munged would not start (see $dir/log/munged.log)"
fi

{
  cat <<EOF
ClusterName=vclocal
SlurmctldHost=localhost
SlurmctldPort=$base
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=2
SchedulerParameters=sched_interval=1
EOF
  for n in $(seq "$nodes"); do
    echo "NodeName=n$n NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((base + n)) CPUs=$cores RealMemory=$mem State=UNKNOWN"
  done
  echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
} >"$dir/slurm.conf"
export SLURM_CONF="$dir/slurm.conf"

if ! running "$dir/run/slurmctld.pid"; then
  slurmctld -c -f "$SLURM_CONF" 9>&- || skip "slurmctld would not start (see $dir/log/slurmctld.log)"
fi
for n in $(seq "$nodes"); do
  if ! running "$dir/run/slurmd-n$n.pid"; then
    slurmd -N "n$n" -f "$SLURM_CONF" 9>&- || skip "slurmd n$n would not start (see $dir/log/slurmd-n$n.log)"
  fi
done

# Wait for every node to register and be schedulable.
for _ in $(seq 100); do
  idle=$(sinfo -h -N -o '%N %t' 2>/dev/null | awk '$2 ~ /^(idle|mix|alloc)/' | wc -l)
  if [ "$idle" -ge "$nodes" ]; then
    echo "$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
sinfo -N >&2 || true
tail -n 20 "$dir"/log/*.log >&2 || true
"$0" stop "$dir"
skip "nodes did not become idle"
