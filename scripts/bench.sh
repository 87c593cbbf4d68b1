#!/usr/bin/env bash
# Benchmarks whose numbers are published in BENCHMARKS.md. Output is
# benchstat-friendly: save two runs and compare them with benchstat.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
go test -run '^$' -bench . -benchmem -count "$count" ./internal/server/
go test -run '^$' -bench . -benchtime 20x -count "$count" ./e2e/
