#!/bin/sh
# Installs what the test suite needs beyond the Rust toolchain, from Debian's packages, when
# it is missing: unshare (util-linux), setpriv, a POSIX sh, readelf, the Go toolchain with the
# Gin and go-systemd packages for the zero-downtime tests (docker/app), and a Docker engine
# (docker.io) for the container tests, which start their own private dockerd, with a static
# busybox they put in an image as the shell of `docker run -it IMAGE -- sh`, and Prometheus
# (prometheus, with promtool) that scrapes ginit's /metrics in tests/metrics.rs; and from
# PyPI check-jsonschema, a real JSON Schema validator that tests/check.rs runs on the example
# configs against `ginit schema`.
# `tests/deps.sh demo`: only what `make demo` needs (the Gin example, hey for load, curl).
set -eu
need=""
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
demo="make util-linux golang-go golang-github-gin-gonic-gin-dev golang-github-coreos-go-systemd-dev hey curl"
if [ "${1:-}" = demo ]; then
    pkgs=$demo
else
    pkgs="$demo dash binutils docker.io busybox-static prometheus"
fi
if [ "${1:-}" != demo ] && ! python3 -c 'import check_jsonschema' 2>/dev/null; then
    echo "tests/deps.sh: installing check-jsonschema from PyPI"
    python3 -m pip install -q --disable-pip-version-check check-jsonschema
fi
for pkg in $pkgs; do
    have "$pkg" || need="$need $pkg"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "tests/deps.sh: missing Debian packages:$need (run: sudo apt-get install$need)" >&2
    exit 1
fi
echo "tests/deps.sh: installing$need"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $need >/dev/null; }
