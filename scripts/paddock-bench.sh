#!/usr/bin/env bash
# The speed-and-scale benchmark from a fresh clone: installs and starts the
# one-host Slurm cluster (figure 6 compares against it; needs root, else that
# figure is skipped), then runs cmd/paddock-bench, which builds paddock and
# starts its own servers on random loopback ports. About 7 minutes on 2 cores.
#
#   bash scripts/paddock-bench.sh            the full table (BENCHMARKS.md)
#   bash scripts/paddock-bench.sh --smoke    tiny sizes, seconds
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  bash scripts/dev-slurm.sh start
  eval "$(bash scripts/dev-slurm.sh env)"
fi
exec go run ./cmd/paddock-bench "$@"
