#!/bin/sh
# Runs ginit as PID 1 of a fresh PID namespace (as in a container) with demo/program.sh as its
# program, at debug log level so every step ginit takes is visible.
# usage: demo/run.sh PATH-TO-GINIT
set -eu
ginit=${1:?usage: demo/run.sh PATH-TO-GINIT}
here=$(dirname "$0")
if [ "$(id -u)" = 0 ]; then
    ns="unshare -p -f --mount-proc"
else
    ns="unshare -U -r -p -f --mount-proc"
fi
echo "+ $ns $ginit -v -- $here/program.sh"
status=0
$ns "$ginit" -v -- "$here/program.sh" || status=$?
echo "+ ginit exited with status $status (the program's)"
