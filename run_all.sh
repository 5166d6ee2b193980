#!/usr/bin/env bash
# Regenerate every report of the lab: execute each notebook with papermill, render HTML, build outputs/index.html.
#   ./run_all.sh [--profile auto|smoke|cpu|gpu] [--only EXPERIMENT]... [--list] [--data-dir DIR] [--force]
#                [--no-download | --fetch-only] [--time-limit SECONDS] [--num-processes N]
#   ./run_all.sh --explain RUN    which part of RUN's cache key changed since its finished run
#   ./run_all.sh --setup-only     install what is missing and print the Python interpreter to use
# Before the first run, the datasets the planned runs read are fetched into DATA_DIR when missing (lib.data.download;
# --no-download or LAB_DOWNLOAD=0: missing files stop it with the command that fetches them elsewhere).
# Set-up (first run): a virtual environment in .venv (unless one is active or LAB_PYTHON is set) with
# requirements.txt; on a machine without an NVIDIA GPU the CPU build of torch first (LAB_TORCH_SPEC, default
# torch==2.13.0). Re-runs skip installing while requirements.txt and requirements-nodeps.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")"

# pip install, quiet; pip's exit status decides (grep alone would fail the script when pip prints nothing)
pip_quiet() {
  local py=$1; shift
  "$py" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v '^WARNING: Location' || true; } >&2
}

setup() {
  local py
  if [ -n "${LAB_PYTHON:-}" ]; then py=$LAB_PYTHON
  elif [ -n "${VIRTUAL_ENV:-}" ]; then py=$VIRTUAL_ENV/bin/python
  else
    [ -x .venv/bin/python ] || { echo "set-up: creating .venv" >&2; python3 -m venv .venv >&2; }
    py=$PWD/.venv/bin/python
  fi
  local stamp_file want
  stamp_file=$("$py" -c 'import sys; print(sys.prefix)')/.nlp-lab-installed
  want=$(cat requirements.txt requirements-nodeps.txt | sha256sum | cut -c1-16)
  if [ "$(cat "$stamp_file" 2>/dev/null)" != "$want" ]; then
    echo "set-up: installing packages into $("$py" -c 'import sys; print(sys.prefix)') (a few minutes, once)" >&2
    if ! "$py" -c 'import torch' 2>/dev/null; then
      if nvidia-smi -L >/dev/null 2>&1; then pip_quiet "$py" torch
      else pip_quiet "$py" "${LAB_TORCH_SPEC:-torch==2.13.0}"; fi
    fi
    pip_quiet "$py" -r requirements.txt
    pip_quiet "$py" --no-deps -r requirements-nodeps.txt
    echo "$want" > "$stamp_file"
  fi
  echo "$py"
}

if [ "${1:-}" = "--setup-only" ]; then setup; exit 0; fi
PY=$(setup)
exec "$PY" -m lib.running.runner "$@"
