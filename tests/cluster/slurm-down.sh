#!/usr/bin/env bash
# Stop the local SLURM started by slurm-up.sh, in reverse order, by PID file.
set -uo pipefail
STATE=${BNBENCH_SLURM_STATE:-/tmp/bnbench-slurm}
for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
  if [ -s "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  fi
done
echo "slurm-down.sh: stopped"
