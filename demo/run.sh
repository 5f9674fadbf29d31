#!/bin/sh
# The main job, on one machine: ginit as PID 1 of a fresh PID namespace (as in a container)
# supervises the Gin example (docker/app, two instances on a socket ginit owns), a oneshot
# and a sidecar (demo/gin.yaml). While `hey` keeps 8 clients busy on the app, the app is
# reloaded twice with zero downtime (`ginit reload web`: each new instance gets the socket,
# signals READY=1, and only then is the old one stopped). At the end: the requests served
# and failed (the expectation is 0 failed), which pids served them, `ginit status`, and a
# clean shutdown.
# usage: demo/run.sh PATH-TO-GINIT   (as root; `make demo` installs what it needs first)
set -eu
ginit=${1:?usage: demo/run.sh PATH-TO-GINIT}
case $ginit in /*) ;; *) ginit=$PWD/$ginit ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
port=${DEMO_PORT:-18080}
pause=${DEMO_PAUSE:-4}
url=http://127.0.0.1:$port/

say() { printf '\n== %s\n' "$*"; }

say "building the Gin example (docker/app) into target/gin-app"
GOCACHE=$root/target/go-cache "$root/docker/app/build.sh" "$root/target/gin-app"

dir=$(mktemp -d /tmp/ginit-demo.XXXXXX)
ginit_pid=""
cleanup() {
    # Only what this script started, by pid.
    [ -n "$ginit_pid" ] && kill "$ginit_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
sed -e "s#PORT#$port#; s#APP#$root/target/gin-app#g; s#DIR#$dir#" "$here/gin.yaml" >"$dir/ginit.yaml"
export GINIT_SOCKET="$dir/control.sock"

say "ginit -c demo/gin.yaml as PID 1 of a fresh PID namespace (its log and the programs' output follow)"
if [ "$(id -u)" = 0 ]; then
    unshare -p -f --mount-proc --kill-child "$ginit" -c "$dir/ginit.yaml" &
else
    unshare -U -r -p -f --mount-proc --kill-child "$ginit" -c "$dir/ginit.yaml" &
fi
ginit_pid=$!
tries=0
until "$ginit" ready >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 300 ] || ! kill -0 "$ginit_pid" 2>/dev/null; then
        echo "demo: ginit did not get ready" >&2
        exit 1
    fi
    sleep 0.1
done

say "load: hey, 8 clients on $url until the end; a sampler notes which pid answers"
# Stopped with SIGINT once both reloads are done (hey then prints its summary), so every
# generation of the app serves for a while, however long the reloads took.
hey -z 10m -c 8 "$url" >"$dir/hey.txt" 2>&1 &
hey_pid=$!
(
    while kill -0 "$hey_pid" 2>/dev/null; do
        curl -s --max-time 5 "$url" || echo "sampler: request failed"
        sleep 0.05
    done
) >"$dir/pids.txt" 2>&1 &
sampler_pid=$!

sleep "$pause"
say "ginit reload web (1 of 2), under load"
"$ginit" reload web
sleep "$pause"
say "ginit reload web (2 of 2), under load"
"$ginit" reload web
sleep "$pause"
kill -INT "$hey_pid"
wait "$hey_pid" || true
wait "$sampler_pid"

# hey's summary: "  [200]<TAB>N responses" per status, "  [N]<TAB>error text" per error.
sp='[[:space:]]*'
served=$(sed -n "s/^$sp\[200\]$sp\([0-9]*\) responses.*/\1/p" "$dir/hey.txt")
total=$(sed -n "s/^$sp\[[0-9]*\]$sp\([0-9]*\) responses.*/\1/p" "$dir/hey.txt" | awk '{s += $1} END {print s + 0}')
errors=$(sed -n '/^Error distribution:/,$p' "$dir/hey.txt" | sed -n "s/^$sp\[\([0-9]*\)\].*/\1/p" | awk '{s += $1} END {print s + 0}')
sampler_failed=$(grep -c 'request failed' "$dir/pids.txt" || true)
failed=$((total - ${served:-0} + errors + sampler_failed))
say "results"
echo "requests served: ${served:-0} (hey) + $(grep -c 'hello from pid' "$dir/pids.txt" || true) (sampler)"
echo "requests failed: $failed"
echo "pids that served: $(sed -n 's/^hello from pid //p' "$dir/pids.txt" | sort -un | tr '\n' ' ')"
sed -n '/^Summary:/,/Requests\/sec/p;/^Status code distribution:/,$p' "$dir/hey.txt" | cat -s

say "ginit status"
"$ginit" status

say "ginit shutdown"
"$ginit" shutdown
status=0
wait "$ginit_pid" || status=$?
ginit_pid=""
echo "+ ginit exited with status $status"
[ "$failed" = 0 ] && [ "$status" = 0 ]
