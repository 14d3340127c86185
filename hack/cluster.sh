#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, offline, for the
# end-to-end tests (`make e2e`). Each unusual setting says why next to it.
#
#   hack/cluster.sh deps     install apt packages, build the binaries and images once (cached)
#   hack/cluster.sh up       deps, then start the cluster and install monitoring
#   hack/cluster.sh down     stop everything `up` started and remove its traces
#   hack/cluster.sh status   print what runs and the kubeconfig path
#   hack/cluster.sh import TARBALL...   import image tarballs into the node
#
# Everything runs as root (containerd, kubelet and kube-proxy need it).
# Processes are started with setsid and recorded in $RUN/pids; `down` stops
# exactly those PIDs (and the containerd shims of our containerd's socket).
#
# Environment:
#   OBOL_CACHE          cache root (default ~/.cache/obol)
#   OBOL_CLUSTER_DIR    state directory (default /var/lib/obol-cluster);
#                       the kubeconfig is $OBOL_CLUSTER_DIR/kubeconfig
#   OBOL_IMAGE_TAR      the obol image tarball to import (default dist/obol-image.tar when present)
#   CI=true             a missing prerequisite fails instead of being reported
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
COREDNS_VERSION=1.15.0
OPERATOR_VERSION=0.85.0
PAUSE_IMAGE=registry.k8s.io/pause:3.6
# Prometheus 3.16 (Go module v0.316.0). Debian's prometheus 2.42 cannot be
# used: Debian builds it without Kubernetes service discovery, so it refuses
# every config the operator writes (kubernetes_sd_configs).
PROM_VERSION=3.16.0
PROM_MODULE_VERSION=v0.316.0
PROM_IMAGE=localhost/obol-test/prometheus:v$PROM_VERSION
OPERATOR_IMAGE=localhost/obol-test/prometheus-operator:v$OPERATOR_VERSION
RELOADER_IMAGE=localhost/obol-test/prometheus-config-reloader:v$OPERATOR_VERSION

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${OBOL_CACHE:-$HOME/.cache/obol}"
TESTBIN="$CACHE/testbin/k8s-$K8S_VERSION"
CBIN="$CACHE/cluster/k8s-$K8S_VERSION"
COREDNS_BIN="$CACHE/cluster/coredns-$COREDNS_VERSION/coredns"
OPBIN="$CACHE/cluster/prometheus-operator-$OPERATOR_VERSION"
PROM_BIN="$CACHE/cluster/prometheus-$PROM_VERSION/prometheus"
IMAGES="$CACHE/cluster/images"
STATE="${OBOL_CLUSTER_DIR:-/var/lib/obol-cluster}"
RUN=/run/obol-cluster
SOCK="$RUN/containerd.sock"
KUBECONFIG_OUT="$STATE/kubeconfig"
NODE=obol-node
APISERVER_PORT=16443
ETCD_CLIENT=23790
ETCD_PEER=23800
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/12
DNS_IP=10.96.0.10
DNS_PORT=10053
LOCAL_PVS="${OBOL_CLUSTER_PVS:-8}"

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 $*): containerd, kubelet and kube-proxy need it"
}

# ---------------------------------------------------------------- deps

deps_apt() {
  local pkgs=()
  command -v containerd >/dev/null 2>&1 || pkgs+=(containerd)
  command -v runc >/dev/null 2>&1 || pkgs+=(runc)
  [ -x /usr/lib/cni/bridge ] || pkgs+=(containernetworking-plugins)
  command -v iptables >/dev/null 2>&1 || pkgs+=(iptables)
  command -v conntrack >/dev/null 2>&1 || pkgs+=(conntrack)
  [ -x /usr/bin/etcd ] || pkgs+=(etcd-server)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  if [ ${#pkgs[@]} -eq 0 ]; then
    log "Debian packages present (containerd, runc, CNI plugins, iptables, etcd)"
    return
  fi
  log "installing Debian packages: ${pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # apt may start services on install; the cluster runs its own.
  systemctl stop containerd etcd prometheus >/dev/null 2>&1 || true
}

# timed NAME CMD...: runs CMD and records how long it took.
timed() {
  local name="$1" start
  shift
  start=$(date +%s)
  "$@"
  log "built $name in $(($(date +%s) - start))s"
}

build_k8s() {
  if [ -x "$CBIN/kubelet" ] && [ -x "$CBIN/kube-controller-manager" ] && [ -x "$CBIN/kube-scheduler" ] &&
    [ -x "$CBIN/kube-proxy" ] && [ -x "$CBIN/kubectl" ]; then
    log "kubelet, kube-controller-manager, kube-scheduler, kube-proxy, kubectl v$K8S_VERSION cached in $CBIN"
    return
  fi
  if [ ! -x "$TESTBIN/kube-apiserver" ]; then
    log "building kube-apiserver first (make test-deps), so the node build reuses its build cache"
    K8S_VERSION="$K8S_VERSION" OBOL_CACHE="$CACHE" "$ROOT/hack/test-deps.sh"
  fi
  log "building kubelet, kube-controller-manager, kube-scheduler, kube-proxy, kubectl v$K8S_VERSION from the Go module proxy"
  log "  (once, cached in $CBIN; about 4 minutes on 2 cores with the kube-apiserver build cache warm)"
  local minor tmp
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  tmp="$CBIN.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # Same settings as the kube-apiserver build (cgo as the default), so most
  # packages come from its build cache.
  (cd "$ROOT/hack/tools/kube-node" &&
    timed "kubernetes node binaries" go build -trimpath \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
      -o "$tmp/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$CBIN" && mv "$tmp" "$CBIN"
}

build_coredns() {
  if [ -x "$COREDNS_BIN" ]; then
    log "CoreDNS v$COREDNS_VERSION cached in $(dirname "$COREDNS_BIN")"
    return
  fi
  log "building CoreDNS v$COREDNS_VERSION from the Go module proxy (once, about 6 minutes on 2 cores): cluster DNS runs as a host process"
  local dir
  dir="$(dirname "$COREDNS_BIN")"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  (cd /tmp && timed "CoreDNS" env GOBIN="$dir.tmp" GOFLAGS=-mod=mod go install -trimpath -ldflags '-s -w' "github.com/coredns/coredns@v$COREDNS_VERSION")
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

build_prometheus() {
  if [ -x "$PROM_BIN" ]; then
    log "Prometheus v$PROM_VERSION cached in $(dirname "$PROM_BIN")"
    return
  fi
  log "building Prometheus v$PROM_VERSION from the Go module proxy (once; only Kubernetes service discovery, no web UI assets)"
  local dir
  dir="$(dirname "$PROM_BIN")"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  (cd /tmp && timed "Prometheus" env CGO_ENABLED=0 GOBIN="$dir.tmp" go install -tags remove_all_sd,enable_kubernetes_sd -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROM_VERSION" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROM_MODULE_VERSION")
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# module_dir MODULE@VERSION prints the module's directory in the module cache.
module_dir() {
  (cd /tmp && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

build_operator() {
  if [ -x "$OPBIN/operator" ] && [ -x "$OPBIN/prometheus-config-reloader" ]; then
    log "prometheus-operator v$OPERATOR_VERSION cached in $OPBIN"
    return
  fi
  log "building prometheus-operator and prometheus-config-reloader v$OPERATOR_VERSION from the Go module proxy (once, about 5 minutes)"
  # The module replaces two of its own nested modules by relative paths,
  # so `go install @version` refuses it: build in a writable copy with the
  # nested modules put back where the replace directives expect them.
  local src m
  src="$(mktemp -d)"
  cp -r "$(module_dir "github.com/prometheus-operator/prometheus-operator@v$OPERATOR_VERSION")" "$src/po"
  chmod -R u+w "$src/po"
  for m in pkg/client pkg/apis/monitoring; do
    rm -rf "${src:?}/po/$m" && mkdir -p "$(dirname "$src/po/$m")"
    cp -r "$(module_dir "github.com/prometheus-operator/prometheus-operator/$m@v$OPERATOR_VERSION")" "$src/po/$m"
  done
  chmod -R u+w "$src/po"
  rm -rf "$OPBIN.tmp" && mkdir -p "$OPBIN.tmp"
  (cd "$src/po" && timed "prometheus-operator" env CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$OPERATOR_VERSION" \
    -o "$OPBIN.tmp/" ./cmd/operator ./cmd/prometheus-config-reloader)
  rm -rf "$src" "$OPBIN" && mv "$OPBIN.tmp" "$OPBIN"
}

# mkimage OUT TAG ARGS...: an image from files on this machine (hack/mkimage).
mkimage() {
  local out="$1" tag="$2"
  shift 2
  (cd "$ROOT" && go run ./hack/mkimage -o "$out.tmp" --tag "$tag" "$@")
  mv "$out.tmp" "$out"
}

build_images() {
  mkdir -p "$IMAGES"
  local stamp="$IMAGES/.inputs" want
  # Rebuild when a tag or an input binary changes.
  want="$(printf '%s\n' "$PAUSE_IMAGE" "$PROM_IMAGE" "$OPERATOR_IMAGE" "$RELOADER_IMAGE" "$(sha256sum "$ROOT/hack/pause/main.go" "$PROM_BIN" "$OPBIN/operator" "$OPBIN/prometheus-config-reloader" | cut -d' ' -f1)")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$IMAGES/pause.tar" ] && [ -f "$IMAGES/prometheus.tar" ] &&
    [ -f "$IMAGES/prometheus-operator.tar" ] && [ -f "$IMAGES/prometheus-config-reloader.tar" ]; then
    log "images cached in $IMAGES"
    return
  fi
  log "building images (pause, prometheus, prometheus-operator, config-reloader) as tarballs in $IMAGES"
  local tmp
  tmp="$(mktemp -d)"
  (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/pause" ./hack/pause)
  mkimage "$IMAGES/pause.tar" "$PAUSE_IMAGE" --file "$tmp/pause:/pause:0755" --entrypoint /pause --user 65535:65535
  mkimage "$IMAGES/prometheus.tar" "$PROM_IMAGE" \
    --file "$PROM_BIN:/bin/prometheus:0755" \
    --dir /prometheus:0777 --dir /etc/prometheus:0755 \
    --entrypoint /bin/prometheus --user 65534:65534
  mkimage "$IMAGES/prometheus-operator.tar" "$OPERATOR_IMAGE" \
    --file "$OPBIN/operator:/bin/operator:0755" --entrypoint /bin/operator --user 65534:65534
  mkimage "$IMAGES/prometheus-config-reloader.tar" "$RELOADER_IMAGE" \
    --file "$OPBIN/prometheus-config-reloader:/bin/prometheus-config-reloader:0755" \
    --entrypoint /bin/prometheus-config-reloader --user 65534:65534
  rm -rf "$tmp"
  printf '%s' "$want" >"$stamp"
}

cmd_deps() {
  need_root deps
  deps_apt
  # CoreDNS and the operator do not share a build graph with Kubernetes;
  # they build while the Kubernetes binaries do.
  build_coredns >"$CACHE/cluster-coredns-build.log" 2>&1 &
  local dns_pid=$!
  build_operator >"$CACHE/cluster-operator-build.log" 2>&1 &
  local op_pid=$!
  build_prometheus >"$CACHE/cluster-prometheus-build.log" 2>&1 &
  local prom_pid=$!
  mkdir -p "$CACHE"
  local rc=0
  build_k8s || rc=1
  wait "$dns_pid" || { cat "$CACHE/cluster-coredns-build.log" >&2; rc=1; }
  wait "$op_pid" || { cat "$CACHE/cluster-operator-build.log" >&2; rc=1; }
  wait "$prom_pid" || { cat "$CACHE/cluster-prometheus-build.log" >&2; rc=1; }
  cat "$CACHE/cluster-coredns-build.log" "$CACHE/cluster-operator-build.log" "$CACHE/cluster-prometheus-build.log" >&2
  [ $rc -eq 0 ] || die "a build failed (see above)"
  # CRDs the cluster serves, read from the module cache at `up`.
  module_dir "github.com/prometheus-operator/prometheus-operator@v$OPERATOR_VERSION" >/dev/null
  build_images
}

# ---------------------------------------------------------------- certificates

node_ip() {
  local dev
  dev="$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')"
  [ -n "$dev" ] || die "no default route: cannot pick the node's address"
  ip -4 -o addr show dev "$dev" | awk '{split($4, a, "/"); print a[1]; exit}'
}

node_mtu() {
  local dev
  dev="$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')"
  cat "/sys/class/net/$dev/mtu"
}

# cert NAME CN O [SANS]: a client/server certificate signed by the cluster CA.
cert() {
  local name="$1" cn="$2" o="$3" sans="${4:-}" pki="$STATE/pki"
  local subj="/CN=$cn"
  [ -n "$o" ] && subj="/O=$o/CN=$cn"
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=clientAuth,serverAuth"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
}

# kubeconfig FILE CERTNAME: a kubeconfig that authenticates with pki/CERTNAME.
kubeconfig() {
  local file="$1" name="$2" pki="$STATE/pki"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: obol-test
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$pki/$name.crt")
    client-key-data: $(base64 -w0 "$pki/$name.key")
contexts:
- name: obol-test
  context: {cluster: obol-test, user: $name}
current-context: obol-test
EOF
  chmod 600 "$file"
}

make_pki() {
  local pki="$STATE/pki"
  mkdir -p "$pki"
  openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=obol-test-ca" -days 30 -sha256 -out "$pki/ca.crt" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "IP:$NODE_IP,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin obol-admin system:masters
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert controller-manager system:kube-controller-manager ""
  cert scheduler system:kube-scheduler ""
  cert kubelet "system:node:$NODE" system:nodes
  cert kube-proxy system:kube-proxy ""
  cert coredns obol-coredns ""
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  local n
  for n in admin controller-manager scheduler kubelet kube-proxy coredns; do
    kubeconfig "$STATE/$n.kubeconfig" "$n"
  done
  cp "$STATE/admin.kubeconfig" "$KUBECONFIG_OUT"
}

# ---------------------------------------------------------------- processes

# start NAME CMD...: run CMD in its own session, log to $STATE/logs/NAME.log,
# record its PID in $RUN/pids/NAME.
start() {
  local name="$1"
  shift
  setsid "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$RUN/pids/$name"
}

alive() { [ -f "$RUN/pids/$1" ] && kill -0 "$(cat "$RUN/pids/$1")" 2>/dev/null; }

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds, or fail saying WHAT.
wait_for() {
  local what="$1" secs="$2" deadline
  shift 2
  deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

kc() { "$CBIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@"; }
ctr_() { ctr --address "$SOCK" -n k8s.io "$@"; }

write_configs() {
  local mtu
  mtu="$(node_mtu)"
  mkdir -p "$STATE/cni/net.d" "$STATE/cni/ipam" "$STATE/containerd" "$RUN/containerd"
  cat >"$STATE/cni/net.d/10-obol.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "obol-test",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "mtu": $mtu,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  # restrict_oom_score_adj: this VM's root lacks CAP_SYS_RESOURCE, so runc
  # cannot lower oom_score_adj and no sandbox starts without it.
  cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUN/containerd"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
[debug]
  address = "$RUN/containerd-debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$SOCK
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: ""
oomScoreAdj: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
podLogsDir: $STATE/pod-logs
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
EOF
  cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE
oomScoreAdj: 0
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  cat >"$STATE/Corefile" <<EOF
.:$DNS_PORT {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig obol-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
}

set_sysctls() {
  local k f
  : >"$STATE/sysctls.orig"
  for k in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables; do
    f="/proc/sys/${k//.//}"
    [ -f "$f" ] || { modprobe br_netfilter 2>/dev/null || true; }
    [ -f "$f" ] || die "$f missing: the kernel needs bridge netfilter (br_netfilter)"
    echo "$k=$(cat "$f")" >>"$STATE/sysctls.orig"
    echo 1 >"$f"
  done
}

# Objects the cluster needs before any workload: cluster DNS (a host process
# behind a selector-less Service), the default StorageClass with local
# PersistentVolumes (they honour fsGroup, unlike hostPath), RBAC for CoreDNS.
bootstrap_objects() {
  local pvs="" i
  for i in $(seq 1 "$LOCAL_PVS"); do
    mkdir -p "$STATE/pv/pv$i"
    chmod 0777 "$STATE/pv/pv$i"
    pvs+="---
apiVersion: v1
kind: PersistentVolume
metadata: {name: obol-local-pv$i, labels: {obol.test/local-pv: \"true\"}}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  local: {path: $STATE/pv/pv$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$NODE]}
"
  done
  kc apply --server-side --field-manager=obol-cluster -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: obol-test:coredns}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: obol-test:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: obol-test:coredns}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: obol-coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: $DNS_PORT}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: $DNS_PORT}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: obol-cluster}
addressType: IPv4
endpoints:
- addresses: [$NODE_IP]
  conditions: {ready: true}
ports:
- {name: dns, port: $DNS_PORT, protocol: UDP}
- {name: dns-tcp, port: $DNS_PORT, protocol: TCP}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
$pvs
EOF
}

import_images() {
  local t
  for t in "$@"; do
    [ -f "$t" ] || die "image tarball $t missing"
    ctr_ images import "$t" >/dev/null || die "ctr images import $t failed"
    log "imported $(basename "$t")"
  done
}

# The Gateway API CRDs (HTTPRoute, ReferenceGrant) the repository keeps for
# its tests: obol's controller publishes each offer's route as an HTTPRoute.
gateway_crds() {
  kc apply --server-side --force-conflicts --field-manager=obol-cluster -f "$ROOT/testdata/crds/gateway-api/" >/dev/null
}

monitoring_manifests() {
  local po
  po="$(module_dir "github.com/prometheus-operator/prometheus-operator@v$OPERATOR_VERSION")"
  kc apply --server-side --force-conflicts --field-manager=obol-cluster -f "$po/example/prometheus-operator-crd/" >/dev/null
  kc apply --server-side --field-manager=obol-cluster -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: monitoring}
EOF
  # The operator's and Prometheus' RBAC from the project's own examples,
  # moved to the monitoring namespace.
  local f
  for f in prometheus-operator-cluster-role.yaml prometheus-operator-cluster-role-binding.yaml prometheus-operator-service-account.yaml; do
    sed 's/namespace: default/namespace: monitoring/' "$po/example/rbac/prometheus-operator/$f"
    echo "---"
  done | kc -n monitoring apply --server-side --field-manager=obol-cluster -f - >/dev/null
  for f in prometheus-cluster-role.yaml prometheus-cluster-role-binding.yaml prometheus-service-account.yaml; do
    sed 's/namespace: default/namespace: monitoring/' "$po/example/rbac/prometheus/$f"
    echo "---"
  done | kc -n monitoring apply --server-side --field-manager=obol-cluster -f - >/dev/null
  kc apply --server-side --field-manager=obol-cluster -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: prometheus-operator
  namespace: monitoring
  labels: {app.kubernetes.io/name: prometheus-operator}
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: prometheus-operator}
  template:
    metadata:
      labels: {app.kubernetes.io/name: prometheus-operator}
    spec:
      serviceAccountName: prometheus-operator
      # The example ServiceAccount turns automounting off.
      automountServiceAccountToken: true
      securityContext: {runAsNonRoot: true, runAsUser: 65534}
      containers:
      - name: prometheus-operator
        image: $OPERATOR_IMAGE
        imagePullPolicy: IfNotPresent
        args:
        - --prometheus-config-reloader=$RELOADER_IMAGE
        - --kubelet-service=
        ports:
        - {containerPort: 8080, name: http}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
          readOnlyRootFilesystem: true
EOF
  wait_for "the Prometheus CRD to be served" 60 kc get prometheuses.monitoring.coreos.com -A
  # Like kube-prometheus-stack: monitors and rules labelled release=monitoring,
  # in any namespace. Short intervals keep the tests short.
  kc apply --server-side --field-manager=obol-cluster -f - >/dev/null <<EOF
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata:
  name: monitoring
  namespace: monitoring
  labels: {release: monitoring}
spec:
  image: $PROM_IMAGE
  version: v$PROM_VERSION
  replicas: 1
  serviceAccountName: prometheus
  scrapeInterval: 5s
  evaluationInterval: 5s
  serviceMonitorSelector: {matchLabels: {release: monitoring}}
  serviceMonitorNamespaceSelector: {}
  podMonitorSelector: {matchLabels: {release: monitoring}}
  podMonitorNamespaceSelector: {}
  ruleSelector: {matchLabels: {release: monitoring}}
  ruleNamespaceSelector: {}
  probeSelector: {matchLabels: {release: monitoring}}
  scrapeConfigSelector: {matchLabels: {release: monitoring}}
  securityContext: {runAsNonRoot: true, runAsUser: 65534, fsGroup: 65534}
---
apiVersion: v1
kind: Service
metadata:
  name: monitoring-prometheus
  namespace: monitoring
  labels: {app: kube-prometheus-stack-prometheus, release: monitoring}
spec:
  selector: {app.kubernetes.io/name: prometheus, operator.prometheus.io/name: monitoring}
  ports:
  - {name: http-web, port: 9090, targetPort: 9090}
EOF
}

cmd_up() {
  need_root up
  if [ -f "$RUN/up" ] || ls "$RUN/pids/"* >/dev/null 2>&1; then
    log "a previous cluster is still recorded in $RUN: tearing it down first"
    cmd_down
  fi
  cmd_deps
  local t0
  t0=$(date +%s)
  NODE_IP="$(node_ip)"
  [ -n "$NODE_IP" ] || die "could not find the node's IPv4 address"
  log "starting a Kubernetes v$K8S_VERSION node '$NODE' at $NODE_IP (state in $STATE)"
  rm -rf "$STATE"
  mkdir -p "$STATE/logs" "$STATE/pod-logs" "$RUN/pids"
  echo "$NODE_IP" >"$STATE/node-ip"
  make_pki
  write_configs
  set_sysctls
  touch "$RUN/up"

  start etcd /usr/bin/etcd --name obol-test --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "obol-test=http://127.0.0.1:$ETCD_PEER" --listen-metrics-urls ""
  start containerd containerd --config "$STATE/containerd/config.toml"
  local pki="$STATE/pki"
  start kube-apiserver "$TESTBIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false
  wait_for "kube-apiserver to be ready (log: $STATE/logs/kube-apiserver.log)" 120 \
    curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://$NODE_IP:$APISERVER_PORT/readyz" ||
    die "kube-apiserver did not become ready"
  start kube-controller-manager "$CBIN/kube-controller-manager" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --allocate-node-cidrs --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 \
    --service-cluster-ip-range "$SERVICE_CIDR" --leader-elect=false --profiling=false
  start kube-scheduler "$CBIN/kube-scheduler" --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
  wait_for "containerd (log: $STATE/logs/containerd.log)" 60 ctr --address "$SOCK" version || die "containerd did not start"
  import_images "$IMAGES/pause.tar" "$IMAGES/prometheus.tar" "$IMAGES/prometheus-operator.tar" "$IMAGES/prometheus-config-reloader.tar"
  local obol_tar="${OBOL_IMAGE_TAR:-$ROOT/dist/obol-image.tar}"
  if [ -f "$obol_tar" ]; then import_images "$obol_tar"; else log "no obol image at $obol_tar (make image); import it later with: $0 import FILE"; fi
  start kubelet "$CBIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --root-dir "$STATE/kubelet" --cert-dir "$STATE/kubelet-pki"
  start kube-proxy "$CBIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
  start coredns "$COREDNS_BIN" -conf "$STATE/Corefile"
  wait_for "node $NODE to be Ready (log: $STATE/logs/kubelet.log)" 120 \
    kc wait --for=condition=Ready "node/$NODE" --timeout=5s || die "the node did not become Ready"
  wait_for "the default ServiceAccount" 60 kc get serviceaccount default -n default || die "no default ServiceAccount"
  bootstrap_objects
  gateway_crds
  monitoring_manifests
  wait_for "prometheus-operator to be available" 120 \
    kc -n monitoring wait --for=condition=Available deployment/prometheus-operator --timeout=5s ||
    { kc -n monitoring describe pods >&2 || true; die "prometheus-operator did not start"; }
  wait_for "Prometheus to be ready" 180 \
    kc -n monitoring wait --for=condition=Ready pod -l operator.prometheus.io/name=monitoring --timeout=5s ||
    { kc -n monitoring get pods -o wide >&2 || true; kc -n monitoring describe pods -l operator.prometheus.io/name=monitoring >&2 || true; die "Prometheus did not start"; }
  log "cluster up in $(($(date +%s) - t0))s; kubeconfig: $KUBECONFIG_OUT"
  log "  export KUBECONFIG=$KUBECONFIG_OUT; $CBIN/kubectl get pods -A"
}

# ---------------------------------------------------------------- teardown

stop_pid() {
  local name="$1" pid i
  [ -f "$RUN/pids/$name" ] || return 0
  pid="$(cat "$RUN/pids/$name")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/pids/$name"
}

cmd_down() {
  need_root down
  # The kubelet first, so it restarts nothing while containers go.
  stop_pid kubelet
  if alive containerd; then
    local c
    for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true; done
    for c in $(ctr_ containers ls -q 2>/dev/null); do
      ctr_ tasks delete -f "$c" >/dev/null 2>&1 || true
      ctr_ containers delete "$c" >/dev/null 2>&1 || true
    done
  fi
  local n
  for n in coredns kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do stop_pid "$n"; done
  # Shims outlive containerd; ours are the ones bound to our socket.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # kube-proxy removes the rules and chains it made.
  if [ -x "$CBIN/kube-proxy" ] && [ -f "$STATE/kube-proxy.yaml" ]; then
    "$CBIN/kube-proxy" --cleanup --config "$STATE/kube-proxy.yaml" >/dev/null 2>&1 || true
  fi
  # Whatever kube-proxy or the CNI plugins left: KUBE-* and CNI-* chains.
  local ipt
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null 2>&1 || continue
    if "$ipt-save" 2>/dev/null | grep -q -e 'KUBE-' -e 'CNI-'; then
      "$ipt-save" | grep -v -e 'KUBE-' -e 'CNI-' | "$ipt-restore" || log "could not remove the KUBE-/CNI- chains from $ipt"
    fi
  done
  # Mounts kubelet and containerd left (deepest first), and pod network namespaces.
  local m
  for m in $(awk '{print $5}' /proc/self/mountinfo | grep -e "^$STATE/" -e "^$RUN/" -e "^/run/netns/cni-" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -f /run/netns/cni-* 2>/dev/null || true
  ip link show cni0 >/dev/null 2>&1 && ip link delete cni0
  # Pod cgroups, deepest first, in every v1 hierarchy (and v2 if mounted).
  local h
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
    [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  if [ -f "$STATE/sysctls.orig" ]; then
    local kv
    while IFS= read -r kv; do
      echo "${kv#*=}" >"/proc/sys/$(echo "${kv%%=*}" | tr . /)" || true
    done <"$STATE/sysctls.orig"
  fi
  rm -rf "$RUN" "$STATE"
  log "cluster down"
  leftovers || true
}

# leftovers reports anything of ours still present; it fails when it finds some.
leftovers() {
  local bad=0
  if awk '{print $5}' /proc/self/mountinfo | grep -q -e "^$STATE" -e "^$RUN" -e '^/run/netns/cni-'; then
    log "leftover mounts:"; awk '{print $5}' /proc/self/mountinfo | grep -e "^$STATE" -e "^$RUN" -e '^/run/netns/cni-' >&2; bad=1
  fi
  if ip link show cni0 >/dev/null 2>&1; then log "leftover bridge cni0"; bad=1; fi
  if iptables-save 2>/dev/null | grep -q -e 'KUBE-' -e 'CNI-'; then log "leftover iptables chains"; bad=1; fi
  if ls -d /sys/fs/cgroup/*/kubepods >/dev/null 2>&1; then log "leftover cgroups: $(ls -d /sys/fs/cgroup/*/kubepods)"; bad=1; fi
  if pgrep -f "containerd-shim-runc-v2 .*-address $SOCK" >/dev/null 2>&1; then log "leftover containerd shims"; bad=1; fi
  return $bad
}

cmd_status() {
  if [ ! -f "$RUN/up" ]; then
    echo "cluster: not running"
    leftovers || true
    return 1
  fi
  local n
  for n in etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns; do
    if alive "$n"; then echo "$n: running (pid $(cat "$RUN/pids/$n"))"; else echo "$n: NOT running"; fi
  done
  echo "kubeconfig: $KUBECONFIG_OUT"
  kc get nodes -o wide 2>&1 || true
}

cmd_import() {
  need_root import
  alive containerd || die "the cluster is not running (make cluster-up)"
  import_images "$@"
}

case "${1:-}" in
deps) cmd_deps ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
import) shift; cmd_import "$@" ;;
kubeconfig) echo "$KUBECONFIG_OUT" ;;
*) echo "usage: $0 {deps|up|down|status|import TARBALL...|kubeconfig}" >&2; exit 2 ;;
esac
