#!/bin/sh
# The demo's main program: behaves like a careless container entrypoint. It leaves orphans and
# a daemon behind and exits with status 3. ginit reaps the orphans, stops the sidecars, gives
# the daemon SIGTERM and time to clean up, and exits with status 3 itself.
echo "program: pid $$ in a fresh PID namespace, started by ginit (pid $PPID)"

# Orphans: their parents exit at once, so they are re-parented to ginit, which reaps them.
for i in 1 2 3; do sh -c 'sleep 0.1 & exit 0'; done

# A daemon that cleans up when told to stop.
sh -c 'trap "echo daemon: SIGTERM received, cleaning up; exit 0" TERM
       echo "daemon: running as pid $$"
       while :; do sleep 1 & wait $!; done' &
sleep 2.5
echo "program: processes now:"
ps -eo pid,ppid,stat,args 2>/dev/null || ls /proc | grep -E '^[0-9]+$' | tr '\n' ' '
echo "program: exiting with status 3 and leaving the daemon behind"
exit 3
