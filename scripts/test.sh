#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, then every Go package
# with the race detector, then the Python SDK's tests. The end-to-end tests build the real binary and start real
# servers on random loopback ports, so this needs nothing else running.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change these files:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go tool staticcheck ./...
# The static build must keep working: paddock is copied onto remote hosts.
CGO_ENABLED=0 go build -o /dev/null ./cmd/paddock
go test -race -count=1 -timeout 20m ./... "$@"
# A short pass of each fuzz target (their seed corpora in testdata/fuzz ran
# with the tests above); a crasher is written to testdata/fuzz and fails here.
# Budgets are counts (5 to 10 s each on two cores), not durations: a
# duration ends with a spurious "context deadline exceeded" now and then
# (golang/go#75804, fixed in Go 1.27).
while read -r target pkg execs; do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "${execs}x" -fuzzminimizetime 100x "$pkg" </dev/null
done <<'TARGETS'
FuzzComputeCreate ./internal/server 15000
FuzzRunSubmit ./internal/server 15000
FuzzAgentLogs ./internal/server 10000
FuzzExtract ./internal/snapshot 5000
FuzzValidateName ./internal/compute 30000
TARGETS
# The Python SDK against a real server.
bash sdk/python/run_tests.sh
# The benchmark at tiny sizes: checks every figure still runs (the numbers
# it prints at these sizes mean nothing; BENCHMARKS.md has the real ones).
# Figure 6 needs the dev Slurm cluster (.ci/run starts it) and is skipped without.
timeout 300 go run ./cmd/paddock-bench --smoke
