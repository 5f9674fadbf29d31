#!/bin/sh
# Builds the Gin example offline from Debian's Go packages (golang-go,
# golang-github-gin-gonic-gin-dev, golang-github-coreos-go-systemd-dev), in GOPATH mode.
# Debian installs go-systemd under its v1 import path; a GOPATH overlay gives it the /v22 path
# that main.go (and go.mod, for users building with modules) uses.
# usage: docker/app/build.sh OUTPUT
set -eu
out=${1:?usage: docker/app/build.sh OUTPUT}
case $out in /*) ;; *) out=$PWD/$out ;; esac
here=$(cd "$(dirname "$0")" && pwd)
overlay=$(mktemp -d)
trap 'rm -rf "$overlay"' EXIT
mkdir -p "$overlay/src/github.com/coreos/go-systemd"
ln -s /usr/share/gocode/src/github.com/coreos/go-systemd "$overlay/src/github.com/coreos/go-systemd/v22"
mkdir -p "$overlay/src/example.com"
cp -r "$here" "$overlay/src/example.com/app"
cd "$overlay/src/example.com/app"
GOPATH="$overlay:/usr/share/gocode" GO111MODULE=off CGO_ENABLED=0 GOCACHE="${GOCACHE:-$overlay/cache}" \
    go build -trimpath -o "$out.tmp" .
mv "$out.tmp" "$out"
