#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, then every Go package
# with the race detector, then the Python SDK's tests against a real server,
# then the benchmark at tiny sizes. The end-to-end tests build the real
# binary and start real servers on random loopback ports, so this needs
# nothing else running.
#
# Some tests need more than Go: OpenSSH (instances, remote targets), Slurm
# (the Slurm tests), Java and PyPI's pyspark (the Spark tests), Chromium
# (the studio in a browser), a Kubernetes control plane (the Kubernetes
# tests), root (run isolation, cgroups, a full disk). As root on Debian or
# Ubuntu this script installs what is missing (scripts/deps.sh) and starts
# a one-host Slurm cluster (scripts/dev-slurm.sh), a one-host Spark
# standalone cluster (scripts/dev-spark.sh) and a PostgreSQL
# (scripts/dev-postgres.sh: the PostgreSQL store and HA tests); where the
# Kubernetes control plane's binaries are built (scripts/dev-k8s.sh build,
# cached; CI builds them) it starts one (scripts/dev-k8s.sh start). It
# stops what it started at the end. Where it cannot, those tests skip;
# either way its last lines name every test that did not run, why, and
# what runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
started_slurm=0
started_spark=0
started_k8s=0
started_pg=0

# summary is the end of every run, passed or not: what did not run.
summary() {
  local code=$?
  if [ $started_slurm = 1 ]; then
    bash scripts/dev-slurm.sh stop || true
  fi
  if [ $started_spark = 1 ]; then
    bash scripts/dev-spark.sh stop || true
  fi
  if [ $started_k8s = 1 ]; then
    bash scripts/dev-k8s.sh stop || true
  fi
  if [ $started_pg = 1 ]; then
    bash scripts/dev-postgres.sh stop || true
  fi
  local go_skips py_skips bench_skips
  go_skips=$( [ -f "$work/skips.tsv" ] && cat "$work/skips.tsv" || true)
  py_skips=$( [ -f "$work/pytest.txt" ] && sed -n 's/^SKIPPED \[[0-9]*\] //p' "$work/pytest.txt" || true)
  bench_skips=$( [ -f "$work/bench.txt" ] && sed -n 's/^| \([^|]*\) | skipped: \([^|]*\) |.*/\1: \2/p' "$work/bench.txt" || true)
  echo
  if [ -z "$go_skips$py_skips$bench_skips" ]; then
    [ $code = 0 ] && echo "test.sh: every test ran; nothing was skipped."
  else
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!! NOT EVERYTHING RAN: these tests were skipped, grouped by the reason they gave"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    if [ -n "$go_skips" ]; then
      # One block per reason: the reason, then its tests by package.
      printf '%s\n' "$go_skips" | sort | awk -F'\t' '
        $1 != last { if (last != "") print ""; print "* " $1; last = $1 }
        { pkg = $2; sub(/^github.com\/paddock-ml\/paddock\//, "", pkg); printf "    %s %s\n", pkg, $3 }'
    fi
    if [ -n "$py_skips" ]; then
      echo; echo "* Python SDK tests (sdk/python/run_tests.sh):"
      printf '    %s\n' "$py_skips"
    fi
    if [ -n "$bench_skips" ]; then
      echo; echo "* benchmark figures (go run ./cmd/paddock-bench --smoke):"
      printf '    %s\n' "$bench_skips"
    fi
    echo
    echo "To run them all: on Debian or Ubuntu, as root, \`bash scripts/test.sh\` installs what"
    echo "they need (scripts/deps.sh) and starts Slurm (scripts/dev-slurm.sh), Spark"
    echo "(scripts/dev-spark.sh) and PostgreSQL (scripts/dev-postgres.sh) itself; for the"
    echo "Kubernetes tests, build the control plane once first: \`bash scripts/dev-k8s.sh build\`"
    echo "(about 7 minutes on 2 cores, cached in ~/.cache/paddock-k8s)."
    if [ "$(id -u)" != 0 ]; then
      echo "This run was not root: \`sudo bash scripts/test.sh\`."
    elif ! command -v apt-get >/dev/null; then
      echo "This machine has no apt-get: install what \`bash scripts/deps.sh --missing\` lists by hand."
    fi
  fi
  if [ $code = 0 ]; then
    echo "test.sh: passed"
  else
    echo "test.sh: FAILED (exit $code); the failures are above"
  fi
  rm -rf "$work"
  exit $code
}
trap summary EXIT

# What the tests need, when this machine can install it.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  bash scripts/deps.sh || echo "test.sh: not everything could be installed; those tests will skip" >&2
fi
# A Slurm cluster: one given by SLURM_CONF, a dev cluster already up, or
# one started now (root with Slurm installed) and stopped at the end.
export SLURM_CONF=${SLURM_CONF:-${PADDOCK_SLURM_DIR:-/tmp/paddock-slurm}/etc/slurm.conf}
if ! { command -v scontrol >/dev/null && scontrol ping 2>/dev/null | grep -q UP; } &&
  [ "$(id -u)" = 0 ] && command -v slurmctld >/dev/null &&
  [ "$SLURM_CONF" = "${PADDOCK_SLURM_DIR:-/tmp/paddock-slurm}/etc/slurm.conf" ]; then
  if bash scripts/dev-slurm.sh start; then
    started_slurm=1
  else
    echo "test.sh: the dev Slurm cluster did not start; the Slurm tests will skip" >&2
  fi
fi

# A Spark standalone cluster for the Spark tests: one scripts/dev-spark.sh
# already started (its master answers), or one started now (root with Java)
# and stopped at the end.
spark_env=${PADDOCK_SPARK_DIR:-/var/tmp/paddock-spark}/env
spark_up() {
  [ -f "$spark_env" ] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/json/", timeout=5)' \
    "$(sed -n 's/^SPARK_MASTER_UI=//p' "$spark_env")" 2>/dev/null
}
if ! spark_up && [ "$(id -u)" = 0 ] && command -v java >/dev/null; then
  if bash scripts/dev-spark.sh start; then
    started_spark=1
  else
    echo "test.sh: the dev Spark cluster did not start; the Spark tests will skip" >&2
  fi
fi

# A Kubernetes control plane: one scripts/dev-k8s.sh started already, or
# one started now when its binaries are built (a cold build takes minutes:
# this script does not start one; `bash scripts/dev-k8s.sh build` does, and
# CI does), stopped at the end.
if ! bash scripts/dev-k8s.sh status 2>/dev/null && bash scripts/dev-k8s.sh built; then
  if bash scripts/dev-k8s.sh start; then
    started_k8s=1
  else
    echo "test.sh: the dev Kubernetes control plane did not start; the Kubernetes tests will skip" >&2
  fi
fi

# A PostgreSQL for the PostgreSQL store's tests and the HA tests: one given
# by PADDOCK_TEST_POSTGRES, or one started now (root with PostgreSQL 15
# installed) and stopped at the end. Each test makes a schema of its own.
if [ -z "${PADDOCK_TEST_POSTGRES:-}" ] && [ "$(id -u)" = 0 ] && [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  pg_was_up=0
  [ -f "${PADDOCK_PG_DIR:-/tmp/paddock-pg}/data/postmaster.pid" ] && pg_was_up=1
  if bash scripts/dev-postgres.sh start; then
    [ $pg_was_up = 1 ] || started_pg=1
    PADDOCK_TEST_POSTGRES=$(bash scripts/dev-postgres.sh dsn)
    export PADDOCK_TEST_POSTGRES
  else
    echo "test.sh: the dev PostgreSQL did not start; the PostgreSQL tests will skip" >&2
  fi
fi

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
go build -o "$work/testreport" ./scripts/testreport
go test -race -count=1 -timeout 20m -json ./... "$@" 2>&1 | "$work/testreport" -skips "$work/skips.tsv"
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
# The Python SDK: type-checked in strict mode, then its tests against a real server.
# (mypy checks the SDK's source, so Debian's python3-mypy serves whatever python3 is first on PATH.)
mypy=""
for py in python3 /usr/bin/python3; do
  if [ -z "$mypy" ] && $py -m mypy --version >/dev/null 2>&1; then mypy="$py -m mypy"; fi
done
if [ -n "$mypy" ]; then
  (cd sdk/python && $mypy --strict paddock)
else
  echo "SKIPPED [1] mypy: not installed: the SDK's type check (bash scripts/deps.sh mypy)" >>"$work/pytest.txt"
fi
bash sdk/python/run_tests.sh -rs 2>&1 | tee -a "$work/pytest.txt"
# The benchmark at tiny sizes: checks every figure still runs (the numbers
# it prints at these sizes mean nothing; BENCHMARKS.md has the real ones).
# Figure 6 needs a Slurm cluster and is skipped without.
# Figure 7 (failover) needs PostgreSQL: with one, it runs on its own on it.
# Figure 8 needs the Kubernetes control plane and is skipped without.
if [ -n "${PADDOCK_TEST_POSTGRES:-}" ]; then
  timeout 300 go run ./cmd/paddock-bench --smoke --only 1,2,3,4,5,6,8 2>&1 | tee "$work/bench.txt"
  timeout 120 go run ./cmd/paddock-bench --smoke --only 7 --store "$PADDOCK_TEST_POSTGRES" 2>&1 | tee -a "$work/bench.txt"
else
  timeout 300 go run ./cmd/paddock-bench --smoke 2>&1 | tee "$work/bench.txt"
fi
