#!/usr/bin/env bash
# Idempotent installer: Debian packages, a virtual environment at .venv, the package in editable mode.
# Usage: scripts/bootstrap.sh [extras]   (default extras: dev,ml)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev,ml}"
APT_PKGS="libxc-dev libopenblas-dev openmpi-bin libopenmpi-dev libscalapack-openmpi-dev slurm-wlm munge make"
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
# headless Chromium renders the report page in tests/test_report_browser.py
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  echo "[bootstrap] apt-get install: chromium"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
    || { $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv"
  "$PY" -m venv .venv
fi
# GPAW is built from source against libxc, OpenMPI and ScaLAPACK (scripts/gpaw-siteconfig.py);
# a GPAW built without ScaLAPACK (an older .venv, or a cached wheel) is rebuilt once
export GPAW_CONFIG="$PWD/scripts/gpaw-siteconfig.py"
if [ -x .venv/bin/gpaw ] && ! .venv/bin/gpaw info 2>/dev/null | grep -Eq "scalapack +yes"; then
  echo "[bootstrap] rebuilding GPAW with ScaLAPACK"
  ver="$(.venv/bin/python -c 'import gpaw; print(gpaw.__version__)')"
  .venv/bin/python -m pip install -q --no-cache-dir --force-reinstall --no-deps "gpaw==$ver"
fi
stamp=".venv/.interphase-stamp"
want="$(sha256sum pyproject.toml scripts/gpaw-siteconfig.py | cut -d' ' -f1 | tr '\n' ' ')$EXTRAS"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  echo "[bootstrap] pip install -e .[$EXTRAS]"
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  if [[ ",$EXTRAS," == *",ml,"* ]]; then
    # the CPU build of torch lies on local disk for exactly this version; install it first so
    # nothing else can pull a CUDA build
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
  if ! .venv/bin/python -c 'import gpaw' 2>/dev/null; then
    # build GPAW here, not from pip's wheel cache (a cached wheel may lack ScaLAPACK)
    .venv/bin/python -m pip install -q --no-cache-dir "gpaw>=24.1"
  fi
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
else
  echo "[bootstrap] .venv up to date"
fi
