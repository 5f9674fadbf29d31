#!/usr/bin/env python3
"""Zero-downtime reload under load: ginit's `replace` strategy beside stop-then-start reloads.

Usage (as root, Linux, Go and node on PATH):
    python3 tests/bench/reload.py [--ginit PATH] [--only a,b] [--quick] [--json OUT]

--ginit defaults to target/x86_64-unknown-linux-gnu/release/ginit (`cargo build --release
--target x86_64-unknown-linux-gnu`). The app is the Gin server of docker/app, built here with
docker/app/build.sh (GOCACHE=target/go-cache): `GET /` answers "hello from pid N". It takes its
listener from LISTEN_FDS or binds $PORT itself, says READY=1 when NOTIFY_SOCKET is set, and on
SIGTERM drains (stops accepting, "Connection: close" on keep-alive connections, then
http.Server.Shutdown). wrk and supervisord come from Debian (`wrk`, `supervisor`, apt-get
installed if missing), PM2 from npm (`npm install pm2` into /tmp/ginit-bench-pm2).

Contenders, each serving on 127.0.0.1 and a free port (the same app binary in all of them):
  ginit-replace  `ginit -c CFG` as PID 1 of a fresh PID namespace (`unshare -p -f --mount-proc
                 --kill-child`). ginit binds the port (`sockets: http: {listen, backlog: 1024}`)
                 and hands it to the app (LISTEN_FDS); `ready: {notify: true}`, `stop: {timeout:
                 15s}`, reload strategy replace (the default with sockets). Reload =
                 `ginit --socket CTL reload web`: a new instance starts on the same socket, and
                 the old one gets SIGTERM once the new one said READY=1.
  ginit-restart  the same ginit, but the app binds $PORT itself (no `sockets`, no readiness
                 check) and `reload: {strategy: restart}`: stop, then start, as a plain
                 supervisor does.
  supervisord    `supervisord -n -c CONF` as PID 1 of a fresh PID namespace, `environment=PORT`,
                 `stopwaitsecs=15`; reload = `supervisorctl -c CONF restart web` (its
                 unix_http_server socket in the temporary directory).
  pm2            PM2's daemon (a plain process tree, PM2_HOME in the temporary directory), the
                 app started from an ecosystem file (fork mode, interpreter none, env PORT,
                 kill_timeout 15000); reload = `pm2 reload web` (in fork mode, a restart).
  baseline       ginit-replace again, with no reload: the latency of the same load undisturbed.

Scenario, per contender: start it, wait (20 s deadline) until `GET /` answers 200; start the
probe, then `wrk -t2 -c50 -dDs --latency http://127.0.0.1:PORT/` (D = 20, 8 with --quick).
While wrk runs, R reloads (10, 4 with --quick) in evenly spaced slots of D/R s: reload i starts
at (i + 0.5) * D/R s after wrk, runs synchronously (60 s deadline), then the script sleeps the
rest of its slot (a reload that overruns its slot delays the next one). The probe stops once
wrk and every reload are done.

Measurements:
  wrk          total requests, socket errors by kind (wrk's "Socket errors: connect N, read N,
               write N, timeout N": connect = a connect() that failed at once, read = a
               connection closed or reset with a response owed, write = a send that failed,
               timeout = no response within 2 s), "Non-2xx or 3xx responses", and the p99
               latency of `--latency`. wrk connects without blocking, so a refused connection
               shows up as a write error, not a connect error, and wrk reconnects at once: a
               short refusal window gives thousands of write errors.
  probe        a thread of this script that, every 5 ms (a fixed schedule; when late it goes
               at once, never in bursts), opens a new TCP connection and sends `GET /
               HTTP/1.0`, 2 s deadline for connect and response. Failures by kind: refused
               (ECONNREFUSED), reset (ECONNRESET, EPIPE), timeout, eof (closed with no
               status line), status (not 200), other. Longest outage = the longest span
               with no successful probe: the largest gap between the ends of consecutive
               successful probes, counting from the probe's start and up to its end (even
               without reloads that is a few ms: the schedule and the load). The distinct
               pids in the answers count the app instances that served; the slowest
               successful probe (connect to end of answer) is reported too.
  reloads      how many reload commands exited 0 (supervisorctl must also print "started"),
               and their median wall time.
The target, for ginit-replace: 0 failed probes (so 0 refused, 0 reset), no wrk socket error,
and a p99 during reloads within 1.5x the baseline's.

Every process is killed when done, also on errors: SIGKILL to the namespace's PID 1 (by its
host pid) for ginit and supervisord, then unshare is reaped; for PM2, `pm2 kill`, then SIGKILL
to the daemon's pid (PM2_HOME/pm2.pid); wrk is killed by its pid if it outlives its deadline;
finally any process still running the app binary of this run (its exe is in this run's
temporary directory) gets SIGKILL by pid. Every wait has a deadline, and a failing measurement
shows "error" in its cells (the exit status is then 1). Raw figures are printed as they come
and, with --json, written with every sample.
"""
import argparse, contextlib, json, os, re, shutil, signal, socket, statistics, subprocess
import sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (PM2_DIR, Namespace as BaseNamespace, apt_install,  # noqa: E402
                    describe_machine, log, npm_install_pm2, pm2_version, wait_for)

KINDS = ["baseline", "ginit-replace", "ginit-restart", "supervisord", "pm2"]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GINIT = os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/ginit")
PM2 = f"{PM2_DIR}/node_modules/pm2/bin/pm2"
APT = {"wrk": "/usr/bin/wrk", "supervisor": "/usr/bin/supervisord"}  # package -> a binary
PROBE_EVERY, PROBE_TIMEOUT = 0.005, 2.0


def ensure_tools(kinds):
    """apt-get install what is missing (apt-get update and again on failure); npm install pm2."""
    pkgs = [p for p, b in APT.items() if not os.access(b, os.X_OK)
            and (p == "wrk" or "supervisord" in kinds)]
    if pkgs:
        apt_install(pkgs, "--no-install-recommends")
    if "pm2" in kinds and not os.path.exists(PM2):
        npm_install_pm2()


def build_app(tmp):
    out = os.path.join(tmp, "app")
    env = dict(os.environ, GOCACHE=os.path.join(ROOT, "target/go-cache"))
    subprocess.run([os.path.join(ROOT, "docker/app/build.sh"), out], env=env, check=True,
                   timeout=600, stdin=subprocess.DEVNULL)
    return out


def version(kind, ginit):
    try:
        if kind == "pm2":
            return pm2_version()
        if kind == "supervisord":
            r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "supervisor"],
                               capture_output=True, text=True, timeout=10)
            return f"supervisor {r.stdout.strip()}"
        r = subprocess.run([ginit, "--version"], capture_output=True, text=True, timeout=10)
        return (r.stdout.strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.SubprocessError, KeyError, ValueError):
        return "?"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, timeout=PROBE_TIMEOUT):
    """One `GET /` on a new connection: ("ok", body) or (failure kind, detail)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except ConnectionRefusedError:
        return "refused", ""
    except (ConnectionResetError, BrokenPipeError):
        return "reset", ""
    except (socket.timeout, TimeoutError):
        return "timeout", ""
    except OSError as e:
        return "other", str(e)
    if not data:
        return "eof", ""
    head, _, body = data.partition(b"\r\n\r\n")
    if not re.match(rb"HTTP/1\.[01] 200 ", head):
        return "status", head[:40].decode(errors="replace")
    return "ok", body.decode(errors="replace")


class Probe(threading.Thread):
    """A GET / on a new connection every PROBE_EVERY s until stop() (see the docstring)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.halt = port, threading.Event()
        self.ok, self.fails, self.pids, self.ends, self.slowest = 0, {}, set(), [], 0.0
        self.failures = []  # (s since the probe started, kind)

    def run(self):
        self.t0 = time.monotonic()
        k = 0
        while not self.halt.is_set():
            start = time.monotonic()
            kind, detail = get(self.port)
            now = time.monotonic()
            if kind == "ok":
                self.ok += 1
                self.slowest = max(self.slowest, now - start)
                self.ends.append(now)
                if m := re.search(r"pid (\d+)", detail):
                    self.pids.add(int(m[1]))
            else:
                self.fails[kind] = self.fails.get(kind, 0) + 1
                self.failures.append((round(now - self.t0, 3), kind))
            k += 1
            nxt = self.t0 + k * PROBE_EVERY
            if nxt < now:  # late: go at once, and do not catch up in a burst
                k = int((now - self.t0) / PROBE_EVERY)
            else:
                self.halt.wait(nxt - now)
        self.t1 = time.monotonic()

    def stop(self):
        self.halt.set()
        self.join(timeout=PROBE_TIMEOUT * 2 + 5)
        if self.is_alive():
            raise TimeoutError("the probe thread did not stop")
        edges = [self.t0, *self.ends, self.t1]
        return {"ok": self.ok, "failed": sum(self.fails.values()), "fail_kinds": self.fails,
                "outage_ms": max(b - a for a, b in zip(edges, edges[1:])) * 1000,
                "slowest_ms": self.slowest * 1000, "app_pids": len(self.pids),
                "failures": self.failures[:200]}


def sweep(exe):
    """SIGKILL to every process whose executable is exe (this run's own app binary)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/exe") == exe:
                    os.kill(int(entry), signal.SIGKILL)


class Namespace(BaseNamespace):
    """common.Namespace (on close, SIGKILL to PID 1, then unshare is reaped); an early exit of
    unshare is reported with the tail of its log."""

    step = 0.01  # pid1() polls every 10 ms here

    def exit_error(self):
        with open(self.log.name, "rb") as f:  # the directory is gone after the run
            tail = f.read()[-300:]
        return RuntimeError(f"unshare exited ({self.proc.returncode}): {tail!r}")


def started(ns):
    try:
        ns.pid1()
    except BaseException:
        ns.close()
        raise


def run(argv, env=None, timeout=60):
    """(exit status, output) of argv; a timeout counts as a failure (status None)."""
    try:
        r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:  # subprocess.run kills and reaps the child
        return None, f"timed out after {timeout} s: {e.output!r}"


class Ginit:
    def __init__(self, kind, dirpath, app, port, ginit):
        self.ginit, self.ctl = ginit, os.path.join(dirpath, "ctl.sock")
        conf = os.path.join(dirpath, "ginit.yaml")
        with open(conf, "w") as f:
            f.write(f"control: {{socket: {json.dumps(self.ctl)}}}\n")
            if kind == "ginit-restart":
                f.write(f"programs:\n  web:\n    command: [{json.dumps(app)}]\n"
                        f"    env: {{PORT: \"{port}\"}}\n    reload: {{strategy: restart}}\n"
                        "    stop: {timeout: 15s}\n")
            else:
                f.write(f"sockets:\n  http: {{listen: \"tcp://127.0.0.1:{port}\", backlog: 1024}}\n"
                        f"programs:\n  web:\n    command: [{json.dumps(app)}]\n"
                        "    sockets: [http]\n    ready: {notify: true, timeout: 10s}\n"
                        "    stop: {timeout: 15s}\n")
        code, out = run([ginit, "check", "-c", conf], timeout=10)
        if code != 0:
            raise RuntimeError(f"ginit check failed: {out[-400:]}")
        self.ns = Namespace([ginit, "-c", conf], dict(os.environ),
                            os.path.join(dirpath, "ginit.log"))
        started(self.ns)

    def reload(self):
        code, out = run([self.ginit, "--socket", self.ctl, "reload", "web"])
        return code == 0, out

    def close(self):
        self.ns.close()


class Supervisord:
    def __init__(self, kind, dirpath, app, port, ginit):
        self.conf = os.path.join(dirpath, "supervisord.conf")
        sock = os.path.join(dirpath, "supervisor.sock")
        with open(self.conf, "w") as f:
            f.write(f"[unix_http_server]\nfile={sock}\n\n"
                    f"[supervisord]\nnodaemon=true\nuser=root\nlogfile={dirpath}/supervisord.log\n"
                    f"pidfile={dirpath}/supervisord.pid\nchildlogdir={dirpath}\n\n"
                    "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
                    "supervisor.rpcinterface:make_main_rpcinterface\n\n"
                    f"[supervisorctl]\nserverurl=unix://{sock}\n\n"
                    f"[program:web]\ncommand={app}\nenvironment=PORT=\"{port}\"\n"
                    "autorestart=true\nstopwaitsecs=15\nstdout_logfile=NONE\n"
                    "stderr_logfile=NONE\n")
        self.ns = Namespace(["/usr/bin/supervisord", "-n", "-c", self.conf], dict(os.environ),
                            os.path.join(dirpath, "out.log"))
        started(self.ns)

    def reload(self):
        code, out = run(["supervisorctl", "-c", self.conf, "restart", "web"])
        return code == 0 and "web: started" in out, out

    def close(self):
        self.ns.close()


class Pm2:
    def __init__(self, kind, dirpath, app, port, ginit):
        self.home = os.path.join(dirpath, "pm2home")
        self.env = dict(os.environ, PM2_HOME=self.home)
        self.pm2 = [shutil.which("node") or "node", PM2]
        eco = os.path.join(dirpath, "ecosystem.json")
        with open(eco, "w") as f:
            json.dump({"apps": [{"name": "web", "script": app, "interpreter": "none",
                                 "exec_mode": "fork", "env": {"PORT": str(port)},
                                 "autorestart": True, "kill_timeout": 15000, "vizion": False,
                                 "watch": False, "out_file": "/dev/null",
                                 "error_file": "/dev/null"}]}, f)
        code, out = run([*self.pm2, "start", eco], env=self.env, timeout=120)
        if code != 0:
            self.close()
            raise RuntimeError(f"pm2 start failed ({code}): {out[-400:]}")

    def reload(self):
        code, out = run([*self.pm2, "reload", "web"], env=self.env)
        return code == 0, out

    def close(self):
        # PM2's daemon writes its pid in PM2_HOME: `pm2 kill` (stops the app), then SIGKILL.
        run([*self.pm2, "kill"], env=self.env, timeout=60)
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(self.home, "pm2.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)


CLASSES = {"ginit-replace": Ginit, "ginit-restart": Ginit, "baseline": Ginit,
           "supervisord": Supervisord, "pm2": Pm2}


def parse_wrk(out):
    """Requests, socket errors, non-2xx and p99 (ms) from wrk's --latency report."""
    res = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not m or not p99:
        raise RuntimeError(f"unexpected wrk output: {out[-400:]!r}")
    res["requests"] = int(m[1])
    res["p99_ms"] = float(p99[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99[2]]
    if e := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      out):
        res.update(connect=int(e[1]), read=int(e[2]), write=int(e[3]), timeout=int(e[4]))
    if n := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        res["non2xx"] = int(n[1])
    return res


def scenario(kind, tmp, app, ginit, duration, reloads):
    dirpath = tempfile.mkdtemp(prefix=f"{kind}-", dir=tmp)
    port = free_port()
    contender = CLASSES[kind](kind, dirpath, app, port, ginit)
    probe = wrk = None
    try:
        wait_for(lambda: get(port, 1.0)[0] == "ok", 20, f"GET / on port {port}", step=0.05)
        probe = Probe(port)
        probe.start()
        wrk_out = open(os.path.join(dirpath, "wrk.txt"), "w+")
        wrk = subprocess.Popen(["wrk", "-t2", "-c50", f"-d{duration}s", "--latency",
                                f"http://127.0.0.1:{port}/"], stdin=subprocess.DEVNULL,
                               stdout=wrk_out, stderr=subprocess.STDOUT)
        t0, slot, runs = time.monotonic(), duration / reloads if reloads else 0, []
        for i in range(reloads):
            time.sleep(max(0.0, t0 + (i + 0.5) * slot - time.monotonic()))
            start = time.monotonic()
            ok, out = contender.reload()
            runs.append({"at_s": round(start - t0, 3), "ms": (time.monotonic() - start) * 1000,
                         "ok": ok, **({} if ok else {"output": out[-300:]})})
            log(f"    reload {i + 1}/{reloads} at {start - t0:.2f} s: "
                f"{'ok' if ok else 'FAILED'} in {runs[-1]['ms']:.0f} ms")
        try:
            wrk.wait(timeout=max(0.0, t0 + duration - time.monotonic()) + 30)
        except subprocess.TimeoutExpired:
            raise TimeoutError("wrk did not finish in time") from None
        res = {"probe": probe.stop()}
        probe = None
        wrk_out.seek(0)
        text = wrk_out.read()
        wrk_out.close()
        if wrk.returncode != 0:
            raise RuntimeError(f"wrk exited with {wrk.returncode}: {text[-300:]!r}")
        res["wrk"] = parse_wrk(text)
        res["reloads"] = {"n": reloads, "ok": sum(r["ok"] for r in runs),
                          "median_ms": statistics.median(r["ms"] for r in runs) if runs else None,
                          "runs": runs}
        res["port"], res["dir"] = port, dirpath
        return res
    finally:
        if wrk and wrk.poll() is None:
            wrk.kill()
            wrk.wait(timeout=10)
        if probe:
            with contextlib.suppress(TimeoutError):
                probe.stop()
        contender.close()
        sweep(app)


def flat(res):
    """The table's figures of one scenario result (None where it failed)."""
    if "error" in res or "wrk" not in res:
        return {}
    w, p, r = res["wrk"], res["probe"], res["reloads"]
    kinds = p["fail_kinds"]
    return {"requests": w["requests"], "connect": w["connect"], "read": w["read"],
            "write": w["write"], "timeout": w["timeout"], "non2xx": w["non2xx"],
            "p99": w["p99_ms"], "probe_ok": p["ok"], "probe_failed": p["failed"],
            "refused": kinds.get("refused", 0), "reset": kinds.get("reset", 0),
            "ptimeout": kinds.get("timeout", 0),
            "other": sum(v for k, v in kinds.items() if k not in ("refused", "reset", "timeout")),
            "outage": p["outage_ms"], "slowest": p["slowest_ms"], "pids": p["app_pids"],
            "reloads_ok": f"{r['ok']}/{r['n']}" if r["n"] else "—",
            "reload_ms": r["median_ms"]}


ROWS = [  # (label, field, format, target for ginit-replace)
    ("version", "version", "{}", ""),
    ("wrk requests (total)", "requests", "{:,}", ""),
    ("wrk socket errors: connect", "connect", "{:,}", "0"),
    ("wrk socket errors: read", "read", "{:,}", "0"),
    ("wrk socket errors: write", "write", "{:,}", "0"),
    ("wrk socket errors: timeout", "timeout", "{:,}", "0"),
    ("wrk non-2xx/3xx responses", "non2xx", "{:,}", "0"),
    ("wrk p99 latency (ms)", "p99", "{:.2f}", "≤ 1.5× baseline"),
    ("p99 / baseline p99", "ratio", "{:.2f}×", "≤ 1.50×"),
    ("probe ok", "probe_ok", "{:,}", ""),
    ("probe failed", "probe_failed", "{:,}", "0"),
    ("  refused", "refused", "{:,}", "0"),
    ("  reset", "reset", "{:,}", "0"),
    ("  timeout", "ptimeout", "{:,}", "0"),
    ("  eof / bad status / other", "other", "{:,}", "0"),
    ("longest probe outage (ms)", "outage", "{:.1f}", ""),
    ("slowest successful probe (ms)", "slowest", "{:.1f}", ""),
    ("app instances seen by the probe", "pids", "{}", ""),
    ("reload commands ok", "reloads_ok", "{}", "all"),
    ("reload command, median (ms)", "reload_ms", "{:.0f}", ""),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ginit", default=GINIT, help=f"ginit binary (default {GINIT})")
    ap.add_argument("--only", help="comma-separated subset of: " + ", ".join(KINDS))
    ap.add_argument("--quick", action="store_true", help="8 s of load, 4 reloads")
    ap.add_argument("--json", help="also write the raw results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("reload.py: needs root (unshare -p)")
    ginit = os.path.realpath(args.ginit)
    if not os.access(ginit, os.X_OK):
        sys.exit(f"reload.py: {ginit} is not an executable (cargo build --release "
                 "--target x86_64-unknown-linux-gnu)")
    names = args.only.split(",") if args.only else list(KINDS)
    if unknown := [n for n in names if n not in KINDS]:
        sys.exit(f"reload.py: unknown contender(s) {unknown}; choose from {KINDS}")
    ensure_tools(names)
    duration, reloads = (8, 4) if args.quick else (20, 10)

    results = {n: {} for n in names}
    with tempfile.TemporaryDirectory(prefix="ginit-bench-reload-") as tmp:
        app = build_app(tmp)
        try:
            for n in names:
                log(f"[{n}] {duration} s of wrk -t2 -c50, {0 if n == 'baseline' else reloads} "
                    "reloads")
                try:
                    results[n] = scenario(n, tmp, app, ginit, duration,
                                          0 if n == "baseline" else reloads)
                except Exception as e:  # noqa: BLE001 - one failure must not abort the table
                    results[n] = {"error": f"{type(e).__name__}: {e}"}
                raw = flat(results[n]) or results[n]
                log("    " + str({k: (round(v, 2) if isinstance(v, float) else v)
                                  for k, v in raw.items()}))
                if results[n].get("probe", {}).get("failures"):
                    log(f"    probe failures (s, kind): {results[n]['probe']['failures'][:20]}")
        finally:
            sweep(app)

    base = flat(results.get("baseline", {})).get("p99")
    cells = {}
    for n in names:
        cells[n] = {**flat(results[n]), "version": version(n, ginit)}
        if base and "p99" in cells[n]:
            cells[n]["ratio"] = cells[n]["p99"] / base
    machine = describe_machine()
    print(f"\n**Reload benchmark** — {machine}; `wrk -t2 -c50 -d{duration}s` per contender, "
          f"{reloads} reloads during it (none for baseline), a probe every "
          f"{PROBE_EVERY * 1000:.0f} ms\n")
    print("| | " + " | ".join(names) + " | target (ginit-replace) |")
    print("|---|" + "---:|" * len(names) + "---|")
    for label, field, fmt, target in ROWS:
        row = []
        for n in names:
            v = cells[n].get(field)
            row.append(("error" if "error" in results[n] else "—") if v is None
                       else fmt.format(v))
        print(f"| {label} | " + " | ".join(row) + f" | {target} |")
    for n in names:
        if "error" in results[n]:
            print(f"\n{n}: {results[n]['error']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "duration_s": duration, "reloads": reloads,
                       "results": results}, f, indent=1)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
