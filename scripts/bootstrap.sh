#!/usr/bin/env bash
# Idempotent installer: Debian packages, a virtual environment at .venv, the package in editable mode.
# Usage: scripts/bootstrap.sh [extras]   (default extras: dev,ml)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev,ml}"
APT_PKGS="libxc-dev libopenblas-dev openmpi-bin libopenmpi-dev slurm-wlm munge make"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=""
for p in $APT_PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "[bootstrap] apt-get install:$missing"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q $missing
else
  echo "[bootstrap] Debian packages present"
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.interphase-stamp"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $EXTRAS"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  echo "[bootstrap] pip install -e .[$EXTRAS]"
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  if [[ ",$EXTRAS," == *",ml,"* ]]; then
    # the CPU build of torch lies on local disk for exactly this version; install it first so
    # nothing else can pull a CUDA build
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
else
  echo "[bootstrap] .venv up to date"
fi
