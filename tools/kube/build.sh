#!/usr/bin/env bash
# Builds the Kubernetes binaries Slipway's tests run (internal/testtool/
# kubecluster) from the Go module proxy into DIR, by default the directory
# kubecluster looks in:
#
#   tools/kube/build.sh [DIR]
#
# It does nothing when DIR already holds them, built by this script from
# the same go.mod, go.sum and flags (a stamp file, DIR/.built, says so).
# A cold build takes about 7 minutes and 3.5 GB of Go build cache; a warm
# one, 15 s. The version is go.mod's; kubecluster.Version must match it.
set -euo pipefail
dir=${1:-}
if [ -n "$dir" ] && [ "${dir#/}" = "$dir" ]; then dir=$PWD/$dir; fi
cd "$(dirname "$0")"
version=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' go.mod)
dir=${dir:-${XDG_CACHE_HOME:-$HOME/.cache}/slipway/kubernetes-$version}
bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

major=${version#v}; major=${major%%.*}
minor=${version#v*.}; minor=${minor%%.*}
ldflags="-s -w"
# Built from the module cache, the components would report v0.0.0 (in
# `kubectl version`, the node's kubeletVersion, version checks).
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

# The stamp names the version, the module files and the flags the
# binaries were built with, so that a change to any rebuilds.
stamp="$version $( (cat go.mod go.sum; echo "$ldflags") | sha256sum | cut -d' ' -f1)"

if [ "$(cat "$dir/.built" 2>/dev/null)" = "$stamp" ]; then
  missing=0
  for b in "${bins[@]}"; do [ -x "$dir/$b" ] || missing=1; done
  if [ $missing = 0 ]; then
    echo "Kubernetes $version binaries are in $dir"
    exit 0
  fi
fi

mkdir -p "$dir"
rm -f "$dir/.built"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building Kubernetes $version into $dir (a cold build takes about 7 minutes)"
start=$SECONDS
pkgs=()
for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}"
for b in "${bins[@]}"; do mv -f "$tmp/$b" "$dir/$b"; done
echo "$stamp" >"$dir/.built"
echo "built in $((SECONDS - start)) s: $("$dir/kubectl" version --client 2>/dev/null | head -1)"
