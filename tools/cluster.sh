#!/usr/bin/env bash
# A cluster to try by hand: the real INGInious backend and three proctord, each on
# a host of its own (a network namespace with its own address, cabled to a bridge),
# sharing this machine's Docker engine. Needs root and a built proctord (build/).
#   tools/cluster.sh up [--agents N] [--concurrency N] [--build DIR] [--tasks DIR]
#   tools/cluster.sh status
#   tools/cluster.sh submit [--rounds N]   # the demo course, through the real client
#   tools/cluster.sh down
# `up` prints how to pull an agent's cable and put it back.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PROCTOR_PYTHON:-/opt/proctor-venv/bin/python}
if ! "$PY" -c "import inginious" 2>/dev/null || ! command -v ip >/dev/null; then
    PY=$(tools/setup.sh | tail -n 1)
fi
exec "$PY" tools/cluster.py "$@"
