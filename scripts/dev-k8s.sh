#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for development and CI:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with
# kwok as the kubelet of fake nodes (pods are scheduled, Jobs get pods,
# pods go Running; nothing executes). Everything is built from the Go
# module proxy, no Docker, no prebuilt binaries.
#
#   scripts/dev-k8s.sh build   build the binaries unless cached (~7 min cold on 2 cores, seconds after)
#   scripts/dev-k8s.sh start   build if needed, start it all, wait for a Ready node (~5 s)
#   scripts/dev-k8s.sh stop    stop what start started (by PID)
#   scripts/dev-k8s.sh env     print `export KUBECONFIG=...` (an admin, system:masters)
#   scripts/dev-k8s.sh built   exit 0 when the binaries are cached
#   scripts/dev-k8s.sh status  exit 0 when a control plane started here answers
#   scripts/dev-k8s.sh kubectl build kubectl of the same version unless cached, print its path
#                              (the benchmark's bare Jobs; not needed by the tests)
#
# The build is cached in $PADDOCK_K8S_CACHE (default ~/.cache/paddock-k8s):
# its own GOMODCACHE and GOCACHE, and the binaries under bin/<versions>;
# keep that directory between CI runs. The cluster's state (pids, logs,
# certificates, etcd data, kubeconfig) lives in $PADDOCK_K8S_DIR (default
# /tmp/paddock-k8s); ports are free loopback ports picked at start.
#
# kwok drives pods through the stages in scripts/dev-k8s-kwok.yaml: a
# scheduled pod goes Running; a pod annotated paddock.dev/kwok-result
# (succeeded, failed, evicted) ends so; a pod whose image is
# registry.invalid/paddock/missing:1 stays Pending with ErrImagePull.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=${K8S_VERSION:-v1.32.13}
ETCD_VERSION=${ETCD_VERSION:-v3.5.21}
KWOK_VERSION=${KWOK_VERSION:-v0.7.0}
CACHE=${PADDOCK_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paddock-k8s}
BIN=$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION
BASE=${PADDOCK_K8S_DIR:-/tmp/paddock-k8s}
STATE=$BASE/state
export KUBECONFIG_FILE=$STATE/kubeconfig
BINARIES="kube-apiserver kube-controller-manager kube-scheduler etcd kwok"

built() {
  [ -f "$BIN/.complete" ] || return 1
  for b in $BINARIES; do [ -x "$BIN/$b" ] || return 1; done
}

build() {
  if built; then return 0; fi
  local t0; t0=$(date +%s)
  export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gocache GOFLAGS=-mod=mod GOTOOLCHAIN=local
  local proxy; proxy=$(go env GOPROXY | tr ',|' '\n\n' | grep -m1 '^http' || echo https://proxy.golang.org)
  local work=$CACHE/work
  mkdir -p "$BIN" "$work/k8s" "$work/etcd"
  echo "dev-k8s: building Kubernetes $K8S_VERSION, etcd $ETCD_VERSION and kwok $KWOK_VERSION into $BIN (cold: ~7 min on 2 cores)" >&2

  # kube-apiserver, -controller-manager, -scheduler: a throwaway module that
  # requires k8s.io/kubernetes and replaces each of its staging modules
  # (k8s.io/api, ...) by the matching v0.MINOR.PATCH release; where the
  # proxy does not serve that zip, the newest served v0.MINOR.x.
  (
    cd "$work/k8s"
    local minor staging
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    staging="v0.${K8S_VERSION#v1.}"
    curl -fsS "$proxy/k8s.io/kubernetes/@v/${K8S_VERSION}.mod" > upstream.mod
    pick() {
      local m=$1 v
      if [ "$(curl -sI -o /dev/null -w '%{http_code}' "$proxy/$m/@v/$staging.zip")" = 200 ]; then echo "$staging"; return; fi
      for v in $(curl -fsS "$proxy/$m/@v/list" 2>/dev/null | grep -E "^v0\.${minor}\.[0-9]+$" | sort -rV || true); do
        if [ "$(curl -sI -o /dev/null -w '%{http_code}' "$proxy/$m/@v/$v.zip")" = 200 ]; then echo "$v"; return; fi
      done
      echo "$staging"
    }
    {
      printf 'module k8sbuild\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$(awk '/^go /{print $2; exit}' upstream.mod)" "$K8S_VERSION"
      for m in $(sed -n '/^replace (/,/^)/p' upstream.mod | awk '/=> \.\/staging/{print $1}'); do
        printf '\t%s => %s %s\n' "$m" "$m" "$(pick "$m")"
      done
      echo ")"
    } > go.mod
    printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n)\n' > tools.go
    go mod tidy -e >/dev/null 2>tidy.err || true
    for c in kube-apiserver kube-controller-manager kube-scheduler; do
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
        -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 \
        -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
        -o "$BIN/$c" "k8s.io/kubernetes/cmd/$c"
    done
  )
  (
    cd "$work/etcd"
    rm -f go.mod go.sum
    printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go
    go mod init etcdbuild >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1
    CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$BIN/etcd" .
  )
  GOFLAGS= GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags '-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  touch "$BIN/.complete"
  echo "dev-k8s: built in $(( $(date +%s) - t0 ))s" >&2
}

# kubectl: built on demand only (figure 8 of cmd/paddock-bench uses it),
# from the module of the control plane's build.
kubectl_bin() {
  build
  if [ ! -x "$BIN/kubectl" ]; then
    echo "dev-k8s: building kubectl $K8S_VERSION into $BIN (a minute or two)" >&2
    local minor; minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    (
      export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gocache GOFLAGS=-mod=mod GOTOOLCHAIN=local
      cd "$CACHE/work/k8s"
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
        -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 \
        -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
        -o "$BIN/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
      mv "$BIN/kubectl.tmp" "$BIN/kubectl"
    ) >&2
  fi
  echo "$BIN/kubectl"
}

stop_all() {
  [ -f "$STATE/pids" ] || return 0
  # In reverse start order: kwok and the controllers before the apiserver, etcd last.
  tac "$STATE/pids" | while read -r _ pid; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0; while read -r _ pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$STATE/pids"
    [ $alive = 0 ] && break; sleep 0.1
  done
  while read -r _ pid; do kill -9 "$pid" 2>/dev/null || true; done < "$STATE/pids"
  rm -f "$STATE/pids"
}

# freeport prints a free loopback TCP port.
freeport() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# started NAME PID records a process start started.
started() { echo "$1 $2" >> "$STATE/pids"; }

# wait_for WHAT SECONDS CMD...: until CMD succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "dev-k8s: $what did not come up in ${secs}s; see $STATE/*.log" >&2
  return 1
}

start() {
  build
  stop_all
  rm -rf "$STATE"
  mkdir -p "$STATE/certs"
  local etcd_port peer_port api_port kwok_port token
  etcd_port=$(freeport); peer_port=$(freeport); api_port=$(freeport); kwok_port=$(freeport)
  token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  "$BIN/etcd" --name paddock-dev --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "paddock-dev=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --quota-backend-bytes=2147483648 > "$STATE/etcd.log" 2>&1 &
  started etcd $!
  wait_for etcd 20 curl -fsS "http://127.0.0.1:$etcd_port/health"

  openssl genrsa -out "$STATE/sa.key" 2048 2>/dev/null
  openssl rsa -in "$STATE/sa.key" -pubout -out "$STATE/sa.pub" 2>/dev/null
  echo "$token,admin,admin,system:masters" > "$STATE/tokens.csv"
  "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --cert-dir="$STATE/certs" --token-auth-file="$STATE/tokens.csv" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$STATE/sa.pub" --service-account-signing-key-file="$STATE/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true --enable-priority-and-fairness=false \
    --disable-admission-plugins=ServiceAccount --profiling=false > "$STATE/apiserver.log" 2>&1 &
  started kube-apiserver $!
  cat > "$KUBECONFIG_FILE" <<KC
apiVersion: v1
kind: Config
clusters:
- name: paddock-dev
  cluster: {server: "https://127.0.0.1:$api_port", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: paddock-dev
  context: {cluster: paddock-dev, user: admin, namespace: default}
current-context: paddock-dev
KC
  chmod 600 "$KUBECONFIG_FILE"
  wait_for kube-apiserver 90 curl -ksf -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz"

  "$BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --secure-port=0 \
    --use-service-account-credentials=false --service-account-private-key-file="$STATE/sa.key" \
    --controllers='*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller,-persistentvolume-binder,-attachdetach' \
    > "$STATE/kube-controller-manager.log" 2>&1 &
  started kube-controller-manager $!
  "$BIN/kube-scheduler" --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --secure-port=0 > "$STATE/kube-scheduler.log" 2>&1 &
  started kube-scheduler $!
  # kwok is the kubelet of the nodes annotated kwok.x-k8s.io/node=fake.
  "$BIN/kwok" --kubeconfig="$KUBECONFIG_FILE" --config="$HERE/dev-k8s-kwok.yaml" --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake --manage-nodes-with-label-selector= \
    --cidr=10.0.0.1/24 --node-ip=10.0.0.1 --node-lease-duration-seconds=40 --server-address="127.0.0.1:$kwok_port" \
    > "$STATE/kwok.log" 2>&1 &
  started kwok $!
  # One fake node: 32 cores, 256 GiB, no GPU.
  local node; node=$(cat <<'N'
{"apiVersion":"v1","kind":"Node","metadata":{"name":"kwok-node-0",
 "annotations":{"kwok.x-k8s.io/node":"fake","node.alpha.kubernetes.io/ttl":"0"},
 "labels":{"kubernetes.io/hostname":"kwok-node-0","kubernetes.io/os":"linux","kubernetes.io/arch":"ARCH","type":"kwok"}},
 "spec":{},
 "status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"110"},"capacity":{"cpu":"32","memory":"256Gi","pods":"110"}}}
N
)
  node=${node/ARCH/$(go env GOARCH)}
  wait_for "the node API" 30 curl -ksf -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/api/v1/namespaces/default"
  curl -ksf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "https://127.0.0.1:$api_port/api/v1/nodes" -d "$node" >/dev/null
  ready() {
    curl -ksf -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/api/v1/nodes/kwok-node-0" |
      python3 -c 'import json,sys; n=json.load(sys.stdin); sys.exit(0 if any(c["type"]=="Ready" and c["status"]=="True" for c in n["status"].get("conditions",[])) else 1)'
  }
  wait_for "a Ready kwok node" 60 ready
  echo "dev-k8s: up: export KUBECONFIG=$KUBECONFIG_FILE"
}

up() {
  [ -f "$KUBECONFIG_FILE" ] || return 1
  local server token
  server=$(sed -n 's/.*server: "\(https[^"]*\)".*/\1/p' "$KUBECONFIG_FILE")
  token=$(sed -n 's/.*token: "\([^"]*\)".*/\1/p' "$KUBECONFIG_FILE")
  curl -ksf -m 5 -H "Authorization: Bearer $token" "$server/readyz" >/dev/null
}

case "${1:-start}" in
  build) build ;;
  built) built ;;
  status) up ;;
  kubectl) kubectl_bin ;;
  start) start ;;
  stop) stop_all ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_FILE" ;;
  *) echo "usage: $0 build|built|start|status|stop|env|kubectl" >&2; exit 2 ;;
esac
