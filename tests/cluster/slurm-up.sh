#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine for the cluster tests (Debian 12, as root, no
# systemd): munged, slurmctld, slurmd; then wait until the node is idle. Installs the Debian packages
# (SLURM 22.05, ~13 MB) when they are missing. Stop it with tests/cluster/slurm-down.sh.
set -euo pipefail
STATE=${BNBENCH_SLURM_STATE:-/tmp/bnbench-slurm}

if [ "$(id -u)" != 0 ]; then
  echo "slurm-up.sh: must run as root (it writes /etc/slurm and starts daemons)" >&2
  exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi

mkdir -p "$STATE"/{spool,ctld,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile /etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
  su -s /bin/sh munge -c "munged --pid-file=/run/munge/munged.pid"
fi

host=$(hostname -s)
node=$(slurmd -C | head -n 1)   # NodeName=<host> CPUs=... RealMemory=... as slurmd sees this machine
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=bnbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# squeue must still list finished jobs when Snakemake's SLURM executor asks (>= 3 x its status interval)
MinJobAge=300
ReturnToService=2
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld
slurmd
for _ in $(seq 1 60); do
  if [ "$(sinfo -h -o %t 2>/dev/null | head -n 1)" = "idle" ]; then
    echo "slurm-up.sh: node $host idle, partition debug (state in $STATE)"
    exit 0
  fi
  sleep 0.5
done
echo "slurm-up.sh: the node did not become idle in 30 s; see $STATE/log/" >&2
sinfo >&2 || true
exit 1
