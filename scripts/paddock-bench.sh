#!/usr/bin/env bash
# The speed-and-scale benchmark from a fresh clone: installs and starts the
# one-host Slurm cluster (figure 6 compares against it; needs root, else that
# figure is skipped) and the dev Kubernetes control plane with a kubectl of
# its version (figure 8; built once, ~8 minutes cold, cached), then runs
# cmd/paddock-bench, which builds paddock and starts its own servers on
# random loopback ports. About 8 minutes on 2 cores after the builds.
#
#   bash scripts/paddock-bench.sh            the full table (BENCHMARKS.md)
#   bash scripts/paddock-bench.sh --smoke    tiny sizes, seconds
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  bash scripts/dev-slurm.sh start
  eval "$(bash scripts/dev-slurm.sh env)"
fi
if ! bash scripts/dev-k8s.sh status 2>/dev/null; then
  bash scripts/dev-k8s.sh start
  trap 'bash scripts/dev-k8s.sh stop' EXIT
fi
KUBECTL=$(bash scripts/dev-k8s.sh kubectl)
export KUBECTL
go run ./cmd/paddock-bench "$@"
