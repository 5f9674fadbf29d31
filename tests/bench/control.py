#!/usr/bin/env python3
"""Benchmark of ginit's control plane and monitoring (issue 4 targets), beside PM2's CLI.

Usage (as root, Linux):
    python3 tests/bench/control.py --ginit PATH --helper PATH [--pm2 PATH] [--quick] [--json OUT]

Setup: ginit runs as PID 1 of a fresh PID namespace with 10 programs (`HELPER sleep`), its
control socket in a temporary directory. Measurements:

  status_cli    wall time of `ginit status` (the whole client process: exec, connect,
                request, table) over 200 runs (50 with --quick); median and p90 in ms.
  status_socket one status request and its response over an open connection, done from
                this script; median and p90 in microseconds over 1000 requests.
  rss           ginit's VmRSS and RssAnon (kB) after 3 s, first with no program monitored,
                then in a second run where all 10 have `memory_max` (sampled every second).
  sampling_cpu  in that second run, ginit's time on CPU (/proc/PID/schedstat)
                over 30 s (10 s with --quick) as a percentage of one core.
  idle_cpu      the same over the same span in the first run (no program monitored): it
                should be 0, as an idle ginit never wakes.
  pm2_jlist     with --pm2 (a pm2 executable; PM2's own daemon is started and killed by
                this script, PM2_HOME in a temporary directory): wall time of `pm2 jlist`
                with the same 10 programs, median over 20 runs.

Every process started here is killed by pid at the end (unshare runs with --kill-child).
Prints a table with the targets beside the figures.
"""
import argparse, contextlib, json, os, signal, socket, statistics, subprocess, sys
import tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_ns, log, pct, print_table, wait_for  # noqa: E402
from pid1 import ns_init, status  # noqa: E402


def config(helper, sock, monitored):
    lines = [f"control: {{socket: {sock}}}", "programs:"]
    for i in range(10):
        lines.append(f"  p{i}:")
        lines.append(f"    command: [{helper}, sleep]")
        if monitored:
            lines.append("    memory_max: 1GiB")
    return "\n".join(lines) + "\n"






def running(ginit, sock):
    r = subprocess.run([ginit, "--socket", sock, "status", "--json"], capture_output=True,
                       text=True, timeout=10)
    if r.returncode != 0:
        return False
    inst = json.loads(r.stdout)["instances"]
    return len(inst) == 10 and all(i["state"] == "running" for i in inst)


def session(args, monitored, results, span):
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "ctl.sock")
        cfg = os.path.join(tmp, "ginit.yaml")
        with open(cfg, "w") as f:
            f.write(config(args.helper, sock, monitored))
        with ns_init([args.ginit, "-q", "-c", cfg], []) as (_, pid):
            wait_for(lambda: os.path.exists(sock) and running(args.ginit, sock), 10,
                     "10 running programs")
            time.sleep(3)
            st = status(pid)
            key = "monitored" if monitored else "plain"
            results[f"rss_{key}"] = (st["VmRSS"], st["RssAnon"])
            t0, c0 = time.monotonic(), cpu_ns(pid)
            time.sleep(span)
            t1, c1 = time.monotonic(), cpu_ns(pid)
            results[f"cpu_{key}"] = (c1 - c0) / 1e9 / (t1 - t0) * 100
            log(f"{key}: VmRSS {st['VmRSS']} kB, RssAnon {st['RssAnon']} kB, "
                f"CPU {results[f'cpu_{key}']:.3f}% over {t1 - t0:.0f} s")
            if monitored:
                return
            n = 50 if args.quick else 200
            walls = []
            for _ in range(n):
                t = time.perf_counter()
                subprocess.run([args.ginit, "--socket", sock, "status"], check=True,
                               stdout=subprocess.DEVNULL, timeout=10)
                walls.append((time.perf_counter() - t) * 1000)
            results["status_cli_ms"] = (statistics.median(walls), pct(walls, 0.9))
            log(f"ginit status: median {results['status_cli_ms'][0]:.2f} ms")
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.settimeout(10)
            f = s.makefile("rb")
            rts = []
            for _ in range(1000):
                t = time.perf_counter()
                s.sendall(b'{"command":"status"}\n')
                f.readline()
                rts.append((time.perf_counter() - t) * 1e6)
            s.close()
            results["status_socket_us"] = (statistics.median(rts), pct(rts, 0.9))
            log(f"status over the socket: median {results['status_socket_us'][0]:.0f} us")


def pm2_jlist(args, results):
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, PM2_HOME=home)
        eco = os.path.join(home, "eco.json")
        with open(eco, "w") as f:
            json.dump({"apps": [{"name": f"p{i}", "script": args.helper, "args": ["sleep"],
                                 "interpreter": "none", "autorestart": True}
                                for i in range(10)]}, f)
        try:
            subprocess.run([args.pm2, "start", eco], env=env, check=True, timeout=120,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls = []
            for _ in range(20):
                t = time.perf_counter()
                subprocess.run([args.pm2, "jlist"], env=env, check=True, timeout=60,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                walls.append((time.perf_counter() - t) * 1000)
            results["pm2_jlist_ms"] = (statistics.median(walls), pct(walls, 0.9))
            log(f"pm2 jlist: median {results['pm2_jlist_ms'][0]:.0f} ms")
        finally:
            # PM2's daemon writes its pid in PM2_HOME; kill it (and its apps) by pid.
            with contextlib.suppress(Exception):
                subprocess.run([args.pm2, "kill"], env=env, timeout=60,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with contextlib.suppress(Exception):
                with open(os.path.join(home, "pm2.pid")) as f:
                    os.kill(int(f.read().strip()), signal.SIGKILL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ginit", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--pm2")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    args.ginit, args.helper = os.path.abspath(args.ginit), os.path.abspath(args.helper)
    span = 10 if args.quick else 30
    results = {}
    session(args, False, results, span)
    session(args, True, results, span)
    if args.pm2:
        pm2_jlist(args, results)
    rows = [
        ("`ginit status` wall time, median / p90 (ms)", "status_cli_ms", "<= 2 median",
         lambda v: f"{v[0]:.2f} / {v[1]:.2f}"),
        ("status request over the socket, median / p90 (us)", "status_socket_us", "",
         lambda v: f"{v[0]:.0f} / {v[1]:.0f}"),
        ("VmRSS / RssAnon kB, 10 programs, none monitored", "rss_plain", "",
         lambda v: f"{v[0]} / {v[1]}"),
        ("VmRSS / RssAnon kB, 10 programs with memory_max", "rss_monitored", "<= 2560",
         lambda v: f"{v[0]} / {v[1]}"),
        ("ginit CPU %, sampling 10 programs each second", "cpu_monitored", "<= 0.5",
         lambda v: f"{v:.3f}"),
        ("ginit CPU %, idle, nothing monitored", "cpu_plain", "0", lambda v: f"{v:.3f}"),
        ("`pm2 jlist` wall time, median / p90 (ms)", "pm2_jlist_ms", "",
         lambda v: f"{v[0]:.0f} / {v[1]:.0f}"),
    ]
    print_table(rows, results, args.json)

if __name__ == "__main__":
    main()
