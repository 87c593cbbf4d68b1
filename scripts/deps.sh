#!/usr/bin/env bash
# What the tests need beyond Go, installed on Debian/Ubuntu when missing.
# Idempotent: a group already present costs a check, nothing else. Installing
# needs root and apt-get; without them it installs nothing and says so.
#
#   bash scripts/deps.sh            every group
#   bash scripts/deps.sh slurm ...  only these groups
#   bash scripts/deps.sh --missing  install nothing; print the missing groups, one a line
#
# Groups:
#   cc      gcc and libc headers: the race detector (go test -race)
#   ssh     OpenSSH client and server: instance logins, remote targets
#   venv    python3-venv: runs with --requirements build venvs
#   pytest  pytest and wheel: the Python SDK's tests (one pip-installs the SDK offline)
#   mypy    mypy: the Python SDK is type-checked in strict mode
#   mpi     OpenMPI's mpirun: runs with distribution mpi (MpiConfiguration)
#   slurm   Slurm and munge: scripts/dev-slurm.sh, the Slurm tests
#   podman  podman, runc and catatonit (--init): the container (--image) tests
#   java    a Java 17 runtime and python3-venv: scripts/dev-spark.sh, the Spark tests
#   browser chromium (headless) and a font: the studio's browser tests (e2e/studio_test.go)
#   postgres  PostgreSQL 15 (Debian's): the PostgreSQL store and HA tests (scripts/dev-postgres.sh)
#   k8s     curl and openssl: scripts/dev-k8s.sh (which builds the control
#           plane itself, from the Go module proxy), the Kubernetes tests
set -euo pipefail

all=(cc ssh venv pytest mypy mpi slurm podman browser postgres k8s java)

# present GROUP: is what GROUP needs here?
present() {
  case $1 in
    cc) command -v gcc >/dev/null ;;
    ssh) command -v ssh >/dev/null && command -v ssh-keygen >/dev/null && [ -x /usr/sbin/sshd ] ;;
    venv) python3 -c 'import ensurepip, venv' 2>/dev/null ;;
    pytest) python3 -m pytest --version >/dev/null 2>&1 && python3 -c 'import wheel' 2>/dev/null ;;
    mypy) python3 -m mypy --version >/dev/null 2>&1 || /usr/bin/python3 -m mypy --version >/dev/null 2>&1 ;;
    mpi) command -v mpirun >/dev/null ;;
    slurm) command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null ;;
    podman) command -v podman >/dev/null && command -v runc >/dev/null && command -v catatonit >/dev/null ;;
    browser) command -v chromium >/dev/null && [ -n "$(fc-list 2>/dev/null)" ] ;;
    postgres) [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x /usr/lib/postgresql/15/bin/pg_ctl ] ;;
    k8s) command -v curl >/dev/null && command -v openssl >/dev/null ;;
    java) command -v java >/dev/null && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null ;;
    *) echo "deps.sh: unknown group $1 (${all[*]})" >&2; exit 2 ;;
  esac
}

# packages GROUP: the Debian packages that provide it.
packages() {
  case $1 in
    cc) echo gcc libc6-dev ;;
    ssh) echo openssh-client openssh-server ;;
    venv) echo python3-venv ;;
    pytest) echo python3-pytest python3-wheel ;;
    mypy) echo python3-mypy ;;
    mpi) echo openmpi-bin ;;
    slurm) echo slurm-wlm slurm-client munge ;;
    podman) echo podman runc catatonit ;;
    browser) echo chromium fonts-dejavu-core fontconfig ;;
    postgres) echo postgresql-15 ;;
    k8s) echo curl openssl ca-certificates ;;
    java) echo openjdk-17-jre-headless python3-venv ;;
  esac
}

missing_only=0
groups=()
for a in "$@"; do
  case $a in
    --missing) missing_only=1 ;;
    *) groups+=("$a") ;;
  esac
done
[ ${#groups[@]} -gt 0 ] || groups=("${all[@]}")

missing=()
for g in "${groups[@]}"; do
  present "$g" || missing+=("$g")
done
if [ $missing_only = 1 ]; then
  [ ${#missing[@]} -eq 0 ] || printf '%s\n' "${missing[@]}"
  exit 0
fi
[ ${#missing[@]} -gt 0 ] || exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "deps.sh: missing ${missing[*]}; installing needs root and apt-get (run: sudo bash scripts/deps.sh)" >&2
  exit 1
fi
pkgs=()
for g in "${missing[@]}"; do
  # shellcheck disable=SC2207
  pkgs+=($(packages "$g"))
done
echo "deps.sh: installing ${pkgs[*]} (for ${missing[*]})" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
# pytest and mypy for a python3 that is not Debian's (pyenv and the like) come from pip.
for tool in pytest mypy; do
  if [[ " ${missing[*]} " == *" $tool "* ]] && ! present $tool; then
    python3 -m pip install -q $tool
    [ $tool != pytest ] || python3 -m pip install -q wheel
  fi
done
still=()
for g in "${missing[@]}"; do
  present "$g" || still+=("$g")
done
if [ ${#still[@]} -gt 0 ]; then
  echo "deps.sh: still missing after the install: ${still[*]}" >&2
  exit 1
fi
