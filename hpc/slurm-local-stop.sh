#!/usr/bin/env bash
# Stop the single-node Slurm started by hpc/slurm-local-start.sh (jobs are cancelled).
# Leaves munged running (other services may use it) unless called with --all.
set -uo pipefail
STATE="${SLURM_LOCAL_DIR:-/var/spool/slurm-local}"
export SLURM_CONF="${SLURM_CONF_DIR:-/etc/slurm}/slurm.conf"
scancel --user="$(id -un)" >/dev/null 2>&1 || true
for daemon in slurmd slurmctld; do
  pidfile="$STATE/$daemon.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
  fi
done
for _ in $(seq 1 20); do
  pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || break
  sleep 0.5
done
if [ "${1:-}" = "--all" ] && [ -f /run/munge/munged.pid ]; then
  kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
fi
echo "slurm-local: stopped"
