#!/bin/sh
# Runs ginit as PID 1 of a fresh PID namespace (as in a container): it supervises the programs
# of demo/pid1.yaml (a oneshot, a worker with two instances that waits for it, a crashing
# program with backoff) beside demo/program.sh, which runs as `main`: when main exits, ginit
# stops the rest in order, clears what main left behind, and exits with main's status.
# usage: demo/pid1.sh PATH-TO-GINIT
set -eu
ginit=${1:?usage: demo/pid1.sh PATH-TO-GINIT}
here=$(dirname "$0")
if [ "$(id -u)" = 0 ]; then
    ns="unshare -p -f --mount-proc"
else
    ns="unshare -U -r -p -f --mount-proc"
fi
echo "+ $ns $ginit -c $here/pid1.yaml -- $here/program.sh"
status=0
$ns "$ginit" -c "$here/pid1.yaml" -- "$here/program.sh" || status=$?
echo "+ ginit exited with status $status (the program's)"
