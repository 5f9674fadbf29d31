#!/usr/bin/env python3
"""Benchmark of ginit's metrics endpoint (issue 12 targets).

Usage (as root, Linux):
    python3 tests/bench/metrics.py --ginit PATH --helper PATH [--quick] [--json OUT]

Setup: ginit runs as PID 1 of a fresh PID namespace with 10 programs (`HELPER sleep`) and
`metrics: {listen: tcp://127.0.0.1:PORT}`. Measurements:

  scrape        one `GET /metrics` from this script over loopback: connect, send, read the
                whole answer until ginit closes; 1000 sequential scrapes (200 with --quick),
                median and p99 in microseconds. Each scrape renders the exposition and reads
                /proc for the 10 process trees.
  idle          with no client, ginit's wake-ups over 30 s (10 s with --quick): its context
                switches (voluntary + involuntary, /proc/PID/status) and its time on CPU
                (/proc/PID/schedstat), after the scrapes have ended. An idle ginit never wakes,
                metrics configured or not: the target is 0.

Every process started here is killed by pid at the end (unshare runs with --kill-child).
Prints a table with the targets beside the figures.
"""
import argparse, json, os, socket, statistics, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_ns, free_port, log, pct, print_table, scrape, switches, wait_for  # noqa: E402
from pid1 import ns_init, status  # noqa: E402












def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ginit", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    ginit, helper = os.path.abspath(args.ginit), os.path.abspath(args.helper)
    n = 200 if args.quick else 1000
    span = 10 if args.quick else 30
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        cfg = os.path.join(tmp, "ginit.yaml")
        lines = [f"control: {{socket: {tmp}/ctl.sock}}",
                 f"metrics: {{listen: \"tcp://127.0.0.1:{port}\"}}", "programs:"]
        for i in range(10):
            lines += [f"  p{i}:", f"    command: [{helper}, sleep]"]
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        with ns_init([ginit, "-q", "-c", cfg], []) as (_, pid):
            def ten_up():
                try:
                    body = scrape(port)
                except OSError:
                    return False
                return body.count(b"ginit_program_up{") == 10 and b"} 0\n" not in \
                    body.split(b"# HELP ginit_program_ready")[0]
            wait_for(ten_up, 10, "10 programs up in a scrape")
            body = scrape(port)
            results["scrape_bytes"] = len(body)
            for _ in range(20):  # warm-up
                scrape(port)
            c0 = cpu_ns(pid)
            times = []
            for _ in range(n):
                t = time.perf_counter()
                scrape(port)
                times.append((time.perf_counter() - t) * 1e6)
            c1 = cpu_ns(pid)
            results["scrape_us"] = (statistics.median(times), pct(times, 0.99))
            results["scrape_ginit_cpu_us"] = (c1 - c0) / 1e3 / n
            log(f"{n} scrapes: median {results['scrape_us'][0]:.0f} us, "
                f"p99 {results['scrape_us'][1]:.0f} us, ginit CPU {results['scrape_ginit_cpu_us']:.0f} us each")
            time.sleep(1)  # the last connection's close is behind us
            s0, c0, t0 = switches(pid), cpu_ns(pid), time.monotonic()
            time.sleep(span)
            s1, c1, t1 = switches(pid), cpu_ns(pid), time.monotonic()
            results["idle_wakeups"] = s1 - s0
            results["idle_cpu_pct"] = (c1 - c0) / 1e9 / (t1 - t0) * 100
            results["idle_span_s"] = t1 - t0
            log(f"idle {t1 - t0:.0f} s: {s1 - s0} wake-ups, CPU {results['idle_cpu_pct']:.4f}%")
    rows = [
        ("scrape, 10 programs, median / p99 (us, client side, loopback)", "scrape_us", "< 1000 median",
         lambda v: f"{v[0]:.0f} / {v[1]:.0f}"),
        ("ginit CPU per scrape (us)", "scrape_ginit_cpu_us", "", lambda v: f"{v:.0f}"),
        ("exposition size (bytes)", "scrape_bytes", "", lambda v: f"{v}"),
        (f"idle wake-ups over {span} s, metrics configured", "idle_wakeups", "0", lambda v: f"{v}"),
        ("idle ginit CPU %", "idle_cpu_pct", "0", lambda v: f"{v:.4f}"),
    ]
    print_table(rows, results, args.json)

if __name__ == "__main__":
    main()
