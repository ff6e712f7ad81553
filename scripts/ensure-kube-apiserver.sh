#!/usr/bin/env bash
# Builds a real kube-apiserver for the Kubernetes data-path tests, once, and prints the
# folder that holds it (bin/kube-apiserver, and etcd from Debian's etcd-server).
#
# No kube-apiserver, kind or envtest binary can be downloaded here, so it is built from
# Debian's `kubernetes` source package (1.20.2, vendored) with Debian's golang-go. A cold
# build takes 20-25 CPU-minutes; the binary is cached outside the repository
# (SLUICE_KUBE_CACHE, default ~/.cache/sluice/k8s) and reused while it is there.
# Run as root to let it install the system packages it needs.
set -euo pipefail

W=${SLUICE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/k8s}
mkdir -p "$W"
if [ -x "$W/bin/kube-apiserver" ] && command -v etcd >/dev/null && command -v kubectl >/dev/null; then
  echo "$W"
  exit 0
fi
exec 3>&1 1>&2   # progress to stderr; only the folder goes to stdout

need_apt=()
command -v go >/dev/null || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need_apt+=(golang-github-modern-go-reflect2-dev)
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v dpkg-source >/dev/null || need_apt+=(dpkg-dev)
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need_apt[*]} (install them with apt-get, or run this as root)"
    exit 1
  fi
  echo "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ -x "$W/bin/kube-apiserver" ]; then
  echo "$W" >&3
  exit 0
fi

echo "building kube-apiserver from Debian's kubernetes source package into $W (20-25 CPU-minutes, once)"
cd "$W"
src=$(ls -d "$W"/kubernetes-1.20.* 2>/dev/null | head -1 || true)
if [ -z "$src" ]; then
  # deb-src lines without touching the machine's apt configuration: the same mirror and
  # suites as its own sources.
  mkdir -p "$W/apt/lists/partial" "$W/apt/parts"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$W/apt/parts/src.sources"
  else
    grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$W/apt/parts/src.list"
  fi
  O=(-oDir::Etc::SourceList=/dev/null -oDir::Etc::SourceParts="$W/apt/parts" -oDir::State::Lists="$W/apt/lists")
  apt-get "${O[@]}" update -qq
  apt-get "${O[@]}" source --download-only kubernetes
  tar xzf kubernetes_*.orig.tar.gz
  src=$(ls -d "$W"/kubernetes-1.20.* | head -1)
  # The vendored reflect2 v1.0.1 crashes json-iterator on Go >= 1.18: use Debian's 1.0.2.
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/"
  rm -f "$src/vendor/github.com/modern-go/reflect2/go.mod"
fi

# 1.20 builds in GOPATH mode (vendor/k8s.io/* are links into staging/).
mkdir -p "$W/gopath/src/k8s.io" "$W/bin"
ln -sfn "$src" "$W/gopath/src/k8s.io/kubernetes"
cd "$W/gopath/src/k8s.io/kubernetes"
export GO111MODULE=off GOPATH="$W/gopath" GOCACHE="$W/gocache" GOFLAGS=

# The tarball lacks the generated OpenAPI definitions: generate them.
if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
  go build -o "$W/bin/openapi-gen" k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen
  dirs=$(find -H . \( -not \( \( -path ./_\* -o -path ./.\* -o -path ./vendor \) -prune \) \) -type f -name '*.go' \
    | sed 's|^./staging/src|vendor|; s|^./||' | grep -vE '^vendor/k8s.io/(code-generator|sample-apiserver)/' \
    | xargs grep -l '+k8s:openapi-gen=' | xargs -n1 dirname | LC_ALL=C sort -u \
    | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
  "$W/bin/openapi-gen" --logtostderr -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi \
    -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$W/openapi-violations.report"
fi

V=k8s.io/kubernetes/vendor/k8s.io
go build -ldflags "-X $V/component-base/version.gitVersion=v1.20.2 -X $V/component-base/version.gitMajor=1 -X $V/component-base/version.gitMinor=20" \
  -o "$W/bin/kube-apiserver.tmp" ./cmd/kube-apiserver
mv "$W/bin/kube-apiserver.tmp" "$W/bin/kube-apiserver"
echo "$W" >&3
