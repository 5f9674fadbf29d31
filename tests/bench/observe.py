#!/usr/bin/env python3
"""Benchmark of what seeing inside the container costs (issue 12 targets): idle wake-ups and
resident memory of ginit with the log ring, the metrics endpoint and idle `ginit events` /
`ginit logs -f` subscribers, beside the same config on a ginit from before (--baseline).

Usage (as root, Linux):
    python3 tests/bench/observe.py --ginit PATH --helper PATH [--baseline PATH] [--idle S]

Setup: ginit runs as PID 1 of a fresh PID namespace with 10 programs (`HELPER sleep`, output
`prefix`). "observed" adds `metrics: {listen: tcp://127.0.0.1:PORT}` and two subscribers that
stay connected and idle (`ginit events`, `ginit logs -f`), and scrapes /metrics once. The
baseline binary runs the plain config (it has none of these). Measurements:

  wakeups   ginit's voluntary context switches over S seconds (10) once settled: each is a
            return from poll(2). The target is 0: an idle ginit never wakes up.
  rss       ginit's VmRSS and RssAnon (kB) once settled. Target: within 200 kB of the
            baseline's (rings, which fill only with output, aside).

Every process started here is killed by pid at the end (unshare runs with --kill-child).
"""
import argparse, contextlib, os, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, log, scrape, switches, wait_for  # noqa: E402
from pid1 import ns_init, status  # noqa: E402




def config(helper, sock, port):
    lines = [f"control: {{socket: {sock}}}"]
    if port:
        lines.append(f'metrics: {{listen: "tcp://127.0.0.1:{port}"}}')
    lines.append("programs:")
    for i in range(10):
        lines += [f"  p{i}:", f"    command: [{helper}, sleep]", "    stdout: prefix"]
    return "\n".join(lines) + "\n"






def session(ginit, helper, observed, idle):
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "ctl.sock")
        cfg = os.path.join(tmp, "ginit.yaml")
        port = free_port() if observed else None
        with open(cfg, "w") as f:
            f.write(config(helper, sock, port))
        subs = []
        with ns_init([ginit, "-q", "-c", cfg], []) as (_, pid):
            def up():
                r = subprocess.run([ginit, "--socket", sock, "ready"], capture_output=True)
                return r.returncode == 0
            wait_for(up, 10, "10 ready programs")
            try:
                if observed:
                    assert b"ginit_program_up" in scrape(port), "no metrics"
                    for argv in (["events"], ["logs", "-f"]):
                        subs.append(subprocess.Popen([ginit, "--socket", sock, *argv],
                                                     stdout=subprocess.DEVNULL))
                time.sleep(2)
                st = status(pid)
                w0 = switches(pid)
                time.sleep(idle)
                wakeups = switches(pid) - w0
                for p in subs:
                    assert p.poll() is None, "a subscriber ended"
            finally:
                for p in subs:
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
                    p.wait()
        return {"VmRSS": st["VmRSS"], "RssAnon": st["RssAnon"], "wakeups": wakeups}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ginit", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--baseline", help="a ginit from before issue 12, for the RSS comparison")
    ap.add_argument("--idle", type=float, default=10.0)
    args = ap.parse_args()
    rows = []
    if args.baseline:
        rows.append(("baseline, plain config", session(args.baseline, args.helper, False, args.idle)))
    rows.append(("ginit, plain config", session(args.ginit, args.helper, False, args.idle)))
    rows.append(("ginit, metrics + events + logs -f", session(args.ginit, args.helper, True,
                                                              args.idle)))
    print(f"\n10 programs, idle {args.idle:.0f} s\n")
    print("| run | VmRSS (kB) | RssAnon (kB) | wake-ups while idle |")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['VmRSS']:,} | {r['RssAnon']:,} | {r['wakeups']} |")
    log("targets: 0 wake-ups; RSS within 200 kB of the baseline")


if __name__ == "__main__":
    main()
