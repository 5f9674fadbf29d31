#!/bin/sh
# Builds the example image (the top-level Dockerfile) without pulling anything: ginit and the
# Gin app are built on this machine (ginit with cargo, statically; the app with
# docker/app/build.sh from Debian's Go packages) and put into two small FROM-scratch images
# that replace the Dockerfile's builder stages (GINIT_FROM, APP_FROM). CI and tests/docker.rs
# use it; users build with plain `docker build .` instead.
# usage: docker/build-offline.sh GINIT_BINARY APP_BINARY TAG   (DOCKER_HOST names the engine)
set -eu
ginit=${1:?usage: docker/build-offline.sh GINIT_BINARY APP_BINARY TAG}
app=${2:?usage: docker/build-offline.sh GINIT_BINARY APP_BINARY TAG}
tag=${3:?usage: docker/build-offline.sh GINIT_BINARY APP_BINARY TAG}
docker=${DOCKER:-docker}
root=$(cd "$(dirname "$0")/.." && pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

mkdir -p "$ctx/ginit/rootfs/run/ginit" "$ctx/ginit/rootfs/tmp" "$ctx/app"
chmod 1777 "$ctx/ginit/rootfs/tmp"
cp "$ginit" "$ctx/ginit/ginit"
printf 'FROM scratch\nCOPY ginit /ginit\nCOPY rootfs/ /rootfs/\n' > "$ctx/ginit/Dockerfile"
cp "$app" "$ctx/app/app"
printf 'FROM scratch\nCOPY app /app\n' > "$ctx/app/Dockerfile"

export DOCKER_BUILDKIT=1
"$docker" build -q -t "$tag-ginit-prebuilt" "$ctx/ginit" >/dev/null
"$docker" build -q -t "$tag-app-prebuilt" "$ctx/app" >/dev/null
"$docker" build -q -t "$tag" \
    --build-arg GINIT_FROM="$tag-ginit-prebuilt" \
    --build-arg APP_FROM="$tag-app-prebuilt" \
    "$root" >/dev/null
echo "built $tag"
