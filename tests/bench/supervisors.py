#!/usr/bin/env python3
"""Side-by-side benchmark of ginit's supervisor mode against supervisord, runit, s6 and PM2.

Usage (as root, Linux, gcc and node on PATH):
    python3 tests/bench/supervisors.py --ginit PATH [--baseline PATH] [--only ginit,s6,...]
        [--quick] [--json OUT]

--baseline measures an earlier ginit too, as the column `ginit-before`, in the same run (a
redesign shows its cost side by side, not against figures of another day).

Peers: supervisord (Debian `supervisor`), runit (`runsvdir`/`runsv`), s6 (`s6-svscan`/
`s6-supervise`), all installed with apt-get if missing, and PM2 from the npm registry
(`npm install pm2` into /tmp/ginit-bench-pm2, run with the machine's node as `pm2-runtime`, its
container mode: the God daemon runs inside that one node process, nothing daemonises).

Every supervisor runs as PID 1 of a fresh PID namespace (`unshare -p -f --mount-proc
--kill-child SUPERVISOR ...`) and supervises 10 programs: tests/bench/stamp.c, compiled here
with `gcc -O2 -static`, which reads CLOCK_MONOTONIC right after exec, writes "NS PID" to its
stamp file, then sleeps in pause(). runsv runs `./run` and s6-supervise `./run NAME` in the
service directory, so there ./run is a symlink to the stamp binary: no shell anywhere. The
runit/s6 scan directory gets an mtime 10 s in the past, as in an image: runsvdir ignores a
directory modified within the current second, which would add 1 s to its start. Every program is
configured to restart at once: ginit `backoff: {initial: 0s, reset_after: 0s}`,
`max_restarts: 1000`; supervisord `autorestart=true startsecs=0 startretries=1000`; PM2
`autorestart: true, restart_delay: 0, max_restarts: 1000` (no exp backoff); runit and s6 have
no delay setting. runsv waits 1 s before restarting a service that ran for less than 1 s (the
pauses below avoid that). s6-supervise 2.11 waits 1 s after every death here, however long the
service ran: it forks for ./finish (absent: that child exits 127), then sleeps 1 s in ppoll
before spawning ./run, so its restart figure is ~1000 ms by design. supervisord 4.2 reaps at
once but spawns the replacement only on the next pass of its main loop, after a full
poll(..., 1000 ms): ~1000 ms too. Its first start waits for the same poll: ~1.1 s.

"The supervisor" is every process of the namespace that is not one of the 10 programs: ginit
and supervisord are one process, runit is runsvdir + 10 runsv, s6 is s6-svscan + 10
s6-supervise, PM2 is the pm2-runtime node process (God included). The table says how many.

Measurements, per supervisor:
  idle     Once all 10 programs have stamped, and 1 s more: the sum over the supervisor's
           processes of VmRSS, Pss (smaps_rollup: shared pages split between sharers, fairer
           for multi-process trees) and RssAnon (private memory), in kB; then the context
           switches (voluntary + involuntary, summed over every thread) over IDLE seconds
           without a tracer; then the syscalls over IDLE seconds with `strace -f -c -p PID...`
           attached to all of them (IDLE = 10, 3 with --quick); -f also counts threads and
           any process forked meanwhile (PM2's pidusage runs `sh -c "getconf CLK_TCK"` once).
  restart  `kill -9` one program (in turn p0, p1, ...; its host pid comes from its stamp's
           namespace pid via /proc/PID/status NSpid), latency = replacement's stamp - time
           just before kill(). The next kill waits until the replacement has run 1.1 s, so
           runsv's 1 s rule and PM2's min_uptime never apply. Median and p90 of 20
           kills (5 with --quick).
  start    Time from just before spawning `unshare ... SUPERVISOR` until all 10 programs have
           stamped (the latest stamp), and until the first one stamped; medians of 3 runs
           (1 with --quick), each in fresh directories. The namespace set-up alone
           (`unshare ... STAMP`, one program, no supervisor) is measured the same way and
           printed under the table: it is in every figure.

Every process is killed when done, also on errors: SIGKILL to the namespace's PID 1 (by its
host pid, which takes the whole namespace down), then unshare is reaped; strace is stopped by
its pid. Every wait has a deadline, and a failing measurement shows "error" in its cell (the
exit status is then 1). Raw figures are printed as they come and, with --json, written with
every sample.
"""
import argparse, contextlib, json, os, shutil, signal, statistics, subprocess, sys
import tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (PM2_DIR, Namespace as BaseNamespace, apt_install, cell,  # noqa: E402
                    describe_machine, log, measure_all, npm_install_pm2, pm2_version, read,
                    wait_for)

N = 10  # programs per supervisor
KINDS = ["ginit", "supervisord", "runit", "s6", "pm2"]
APT = {"supervisord": ("supervisor", "/usr/bin/supervisord"),
       "runit": ("runit", "/usr/bin/runsvdir"), "s6": ("s6", "/usr/bin/s6-svscan"),
       "strace": ("strace", "/usr/bin/strace")}  # name -> (Debian package, a binary it installs)
PM2_RUNTIME = f"{PM2_DIR}/node_modules/pm2/bin/pm2-runtime"
HERE = os.path.dirname(os.path.abspath(__file__))


def ensure_tools(kinds):
    """apt-get install what is missing (apt-get update and again on failure); npm install pm2."""
    pkgs = [APT[k][0] for k in [*kinds, "strace"] if k in APT and not os.access(APT[k][1], os.X_OK)]
    if pkgs:
        apt_install(pkgs, "--no-install-recommends")
    if "pm2" in kinds and not os.path.exists(PM2_RUNTIME):
        npm_install_pm2()


def build_stamp(tmp):
    out = os.path.join(tmp, "stamp")
    subprocess.run(["gcc", "-O2", "-static", "-o", out, os.path.join(HERE, "stamp.c")],
                   check=True, timeout=120)
    return out


def version(kind, ginit):
    try:
        if kind.startswith("ginit"):
            r = subprocess.run([ginit, "--version"], capture_output=True, text=True, timeout=10)
            return (r.stdout.strip().splitlines() or ["?"])[0]
        if kind == "pm2":
            return pm2_version()
        pkg = APT[kind][0]
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                           text=True, timeout=10)
        return f"{pkg} {r.stdout.strip()}"
    except (OSError, subprocess.SubprocessError, KeyError, ValueError):
        return "?"


def status(pid):
    """/proc/PID/status as {key: first word}."""
    out = {}
    for line in (read(f"/proc/{pid}/status") or "").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.split()
    return out


def kb(fields, key):
    return int(fields.get(key, ["0"])[0])


def configure(kind, root, stamp, ginit):
    """Writes KIND's config for N stamp programs under root; returns (argv, stamp paths, env)."""
    os.makedirs(root)
    env = dict(os.environ)
    if kind in ("runit", "s6"):  # one service directory each, ./run -> the stamp binary
        svc = os.path.join(root, "svc")
        paths = []
        for i in range(N):
            d = os.path.join(svc, f"p{i}")
            os.makedirs(d)
            os.symlink(stamp, os.path.join(d, "run"))
            # s6-supervise runs `./run NAME`, runsv just `./run`: see stamp.c.
            paths.append(os.path.join(d, f"p{i}" if kind == "s6" else "stamp"))
        # runsvdir ignores a scan directory modified within the current second (it waits for
        # the next one: +1 s to every start). In an image the directory is old; make it so.
        past = time.time() - 10
        os.utime(svc, (past, past))
        argv = ["/usr/bin/runsvdir", svc] if kind == "runit" else ["/usr/bin/s6-svscan", svc]
        return argv, paths, env
    paths = [os.path.join(root, f"p{i}.stamp") for i in range(N)]
    if kind.startswith("ginit"):
        conf = os.path.join(root, "ginit.yaml")
        with open(conf, "w") as f:  # own control socket: not the host's /run/ginit
            f.write(f"control: {{socket: {json.dumps(os.path.join(root, 'control.sock'))}}}\n")
            f.write("programs:\n")
            for i, p in enumerate(paths):
                f.write(f"  p{i}:\n    command: [{json.dumps(stamp)}, {json.dumps(p)}]\n"
                        "    backoff: {initial: 0s, reset_after: 0s}\n    max_restarts: 1000\n"
                        "    stdout: null\n    stderr: null\n")
        r = subprocess.run([ginit, "check", "-c", conf], capture_output=True, text=True,
                           timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f"ginit check failed: {(r.stdout + r.stderr)[-400:]}")
        return [ginit, "-c", conf], paths, env
    if kind == "supervisord":
        conf = os.path.join(root, "supervisord.conf")
        with open(conf, "w") as f:
            f.write(f"[supervisord]\nnodaemon=true\nuser=root\nlogfile={root}/supervisord.log\n"
                    f"pidfile={root}/supervisord.pid\nchildlogdir={root}\n")
            for i, p in enumerate(paths):
                f.write(f"\n[program:p{i}]\ncommand={stamp} {p}\nautorestart=true\n"
                        "startsecs=0\nstartretries=1000\nstdout_logfile=NONE\n"
                        "stderr_logfile=NONE\n")
        return ["/usr/bin/supervisord", "-n", "-c", conf], paths, env
    if kind == "pm2":
        conf = os.path.join(root, "ecosystem.json")
        apps = [{"name": f"p{i}", "script": stamp, "args": [p], "interpreter": "none",
                 "exec_mode": "fork", "autorestart": True, "restart_delay": 0,
                 "max_restarts": 1000, "min_uptime": 100, "vizion": False, "watch": False,
                 "out_file": "/dev/null", "error_file": "/dev/null"}
                for i, p in enumerate(paths)]
        with open(conf, "w") as f:
            json.dump({"apps": apps}, f)
        env["PM2_HOME"] = os.path.join(root, "pm2home")
        return [shutil.which("node") or "node", PM2_RUNTIME, conf], paths, env
    raise ValueError(kind)


class Namespace(BaseNamespace):
    """common.Namespace, plus the namespace's pids and the strace attached to some of them."""

    strace = None

    def pid1(self):
        if self.init is None:
            super().pid1()
            self.ns = os.readlink(f"/proc/{self.init}/ns/pid")
        return self.init

    def pids(self):
        """{host pid: namespace pid} of every process in the namespace."""
        self.pid1()
        out = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/ns/pid") == self.ns:
                        nspid = status(entry).get("NSpid")
                        if nspid:
                            out[int(entry)] = int(nspid[-1])
        return out

    def close(self):
        if self.strace and self.strace.poll() is None:
            self.strace.kill()
            self.strace.wait(timeout=10)
        super().close()


def read_stamp(path):
    """(monotonic ns, namespace pid) from a stamp file, or None."""
    text = read(path)
    parts = text.split() if text else []
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 else None


def running(ns, paths):
    """{index: (stamp ns, host pid)} once every program has stamped and is alive, else None."""
    stamps = [read_stamp(p) for p in paths]
    if None in stamps:
        return None
    host = {nspid: pid for pid, nspid in ns.pids().items()}
    out = {}
    for i, (t, nspid) in enumerate(stamps):
        if nspid not in host:
            return None
        out[i] = (t, host[nspid])
    return out


def supervisor_pids(ns, stamp):
    """Host pids of the namespace's processes that are not one of the programs."""
    out = []
    for pid in ns.pids():
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/exe") != stamp:
                out.append(pid)
    return out


def settle(ns, paths):
    progs = wait_for(lambda: running(ns, paths), 30, "all programs to stamp", step=0.02)
    time.sleep(1.0)
    return progs


def ctx_switches(pids):
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            st = status(f"{pid}/task/{tid}")
            total += kb(st, "voluntary_ctxt_switches") + kb(st, "nonvoluntary_ctxt_switches")
    return total


def strace_count(ns, pids, seconds, out):
    """Syscalls of pids (and their threads, -f) over `seconds`: (total, {name: calls})."""
    argv = ["strace", "-f", "-c", "-o", out]
    for pid in pids:
        argv += ["-p", str(pid)]
    err = tempfile.TemporaryFile()
    ns.strace = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    # Attached once strace has said so for every pid (it prints one line per thread).
    def attached():
        if ns.strace.poll() is not None:
            err.seek(0)
            raise RuntimeError(f"strace exited: {err.read()[-300:]!r}")
        err.seek(0)
        return err.read().count(b" attached") >= len(pids)
    wait_for(attached, 10, "strace to attach", step=0.01)
    time.sleep(seconds)
    ns.strace.send_signal(signal.SIGINT)  # detaches and writes the summary
    ns.strace.wait(timeout=10)
    err.close()
    calls, total = {}, 0
    for line in (read(out) or "").splitlines():
        words = line.split()
        if len(words) >= 5 and words[3].isdigit():
            if words[-1] == "total":
                total = int(words[3])
            else:
                calls[words[-1]] = int(words[3])
    return total, calls  # no table at all: strace saw no syscall


def measure_idle(kind, ctx, seconds):
    argv, paths, env = configure(kind, ctx.fresh(kind), ctx.stamp, ctx.binary(kind))
    with Namespace(argv, env, os.path.join(os.path.dirname(paths[0]), "out.log")) as ns:
        progs = settle(ns, paths)
        sup = supervisor_pids(ns, ctx.stamp)
        names = {}
        vmrss = pss = anon = 0
        for pid in sup:
            st = status(pid)
            vmrss += kb(st, "VmRSS")
            anon += kb(st, "RssAnon")
            names[st["Name"][0]] = names.get(st["Name"][0], 0) + 1
            for line in (read(f"/proc/{pid}/smaps_rollup") or "").splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
        c0 = ctx_switches(sup)
        time.sleep(seconds)
        ctxsw = ctx_switches(sup) - c0
        total, calls = strace_count(ns, sup, seconds, os.path.join(ctx.tmp, f"strace-{kind}"))
        if running(ns, paths) != progs:
            raise RuntimeError("a program restarted while the supervisor was idle")
    return {"procs": len(sup), "names": names, "vmrss_kb": vmrss, "pss_kb": pss,
            "rssanon_kb": anon, "ctxsw": ctxsw, "syscalls": total, "syscall_calls": calls,
            "seconds": seconds}


def measure_restart(kind, ctx, kills):
    argv, paths, env = configure(kind, ctx.fresh(kind), ctx.stamp, ctx.binary(kind))
    samples = []
    with Namespace(argv, env, os.path.join(os.path.dirname(paths[0]), "out.log")) as ns:
        settle(ns, paths)
        for k in range(kills):
            path = paths[k % N]
            _, nspid = read_stamp(path)
            host = [h for h, n in ns.pids().items() if n == nspid]
            if not host:
                raise RuntimeError(f"program p{k % N} (ns pid {nspid}) is not running")
            t0 = time.monotonic_ns()
            os.kill(host[0], signal.SIGKILL)
            t1, _ = wait_for(lambda: (s := read_stamp(path)) and s[1] != nspid and s, 10,
                             f"p{k % N} to be restarted", step=0.002)
            samples.append((t1 - t0) / 1e6)
            # Let the new one run 1.1 s, so no "died too soon" rule or backoff applies.
            time.sleep(max(0.0, 1.1 - (time.monotonic_ns() - t1) / 1e9))
    ranked = sorted(samples)
    return {"kills": kills, "median_ms": statistics.median(samples),
            "p90_ms": ranked[-(-9 * len(ranked) // 10) - 1], "min_ms": ranked[0],
            "max_ms": ranked[-1], "samples_ms": samples}


def time_start(argv, env, paths, logpath):
    """ms from just before spawning unshare until every path holds a stamp (the latest one)."""
    with Namespace(argv, env, logpath) as ns:
        stamps = wait_for(lambda: all(s := [read_stamp(p) for p in paths]) and s, 30,
                          "all programs to stamp", step=0.002)
        return sorted((t - ns.t0) / 1e6 for t, _ in stamps)


def measure_start(kind, ctx, reps):
    """Median of the latest stamps; every stamp of every run in stamps_ms (sorted)."""
    runs = []
    for _ in range(reps):
        argv, paths, env = configure(kind, ctx.fresh(kind), ctx.stamp, ctx.binary(kind))
        logpath = os.path.join(os.path.dirname(paths[0]), "out.log")
        runs.append(time_start(argv, env, paths, logpath))
    return {"median_ms": statistics.median(r[-1] for r in runs),
            "first_ms": statistics.median(r[0] for r in runs), "stamps_ms": runs}


def measure_baseline(ctx, reps):
    runs = []
    for _ in range(reps):
        root = ctx.fresh("baseline")
        os.makedirs(root)
        path = os.path.join(root, "p0.stamp")
        runs += time_start([ctx.stamp, path], os.environ, [path], os.path.join(root, "out.log"))
    return {"median_ms": statistics.median(runs), "runs_ms": runs}


class Context:
    def __init__(self, tmp, stamp, ginit, baseline=None):
        self.tmp, self.stamp, self.ginit, self.n = tmp, stamp, ginit, 0
        self.baseline = baseline

    def binary(self, kind):
        """The ginit binary a ginit kind runs (`ginit-before`: the baseline)."""
        return self.baseline if kind == "ginit-before" else self.ginit

    def fresh(self, kind):
        self.n += 1
        return os.path.join(self.tmp, f"{kind}-{self.n}")


ROWS = [  # (label, measurement, field, format, target for ginit)
    ("version", "info", "version", "{}", ""),
    ("processes counted as the supervisor", "idle", "procs", "{}", "1"),
    ("VmRSS of those, sum (kB)", "idle", "vmrss_kb", "{:,}", "≤ 2048"),
    ("Pss of those, sum (kB)", "idle", "pss_kb", "{:,}", ""),
    ("RssAnon of those, sum (kB)", "idle", "rssanon_kb", "{:,}", ""),
    ("idle syscalls / {s} s (strace -f -c)", "idle", "syscalls", "{:,}", "0"),
    ("idle context switches / {s} s (no tracer)", "idle", "ctxsw", "{:,}", "0"),
    ("restart after kill -9, median (ms)", "restart", "median_ms", "{:.2f}", "≤ 3"),
    ("restart after kill -9, p90 (ms)", "restart", "p90_ms", "{:.2f}", ""),
    ("start: first program stamped, median (ms)", "start", "first_ms", "{:.1f}", ""),
    ("start: all 10 programs stamped, median (ms)", "start", "median_ms", "{:.1f}", "≤ 20"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ginit", required=True)
    ap.add_argument("--baseline", help="an earlier ginit, measured too as `ginit-before`")
    ap.add_argument("--only", help="comma-separated subset of: " + ", ".join(KINDS))
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    ap.add_argument("--json", help="also write the raw results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("supervisors.py: needs root (unshare -p)")
    ginit = os.path.realpath(args.ginit)
    if not os.access(ginit, os.X_OK):
        sys.exit(f"supervisors.py: {ginit} is not an executable")
    names = args.only.split(",") if args.only else list(KINDS)
    if unknown := [n for n in names if n not in KINDS]:
        sys.exit(f"supervisors.py: unknown supervisor(s) {unknown}; choose from {KINDS}")
    baseline = os.path.realpath(args.baseline) if args.baseline else None
    if baseline:
        names.insert(names.index("ginit") + 1 if "ginit" in names else 0, "ginit-before")
    ensure_tools(names)
    idle_s, kills, reps = (3, 5, 1) if args.quick else (10, 20, 3)

    results = {n: {"info": {"version": version(n, baseline if n == "ginit-before" else ginit)}}
               for n in names}
    with tempfile.TemporaryDirectory(prefix="ginit-bench-sup-") as tmp:
        ctx = Context(tmp, build_stamp(tmp), ginit, baseline)
        baseline = {}
        try:
            baseline = measure_baseline(ctx, 3)
        except Exception as e:  # noqa: BLE001
            baseline = {"error": f"{type(e).__name__}: {e}"}
        log(f"[baseline] unshare + one stamp program: {baseline}")
        steps = [("idle", lambda n: measure_idle(n, ctx, idle_s)),
                 ("restart", lambda n: measure_restart(n, ctx, kills)),
                 ("start", lambda n: measure_start(n, ctx, reps))]
        measure_all(steps, names, results, lambda k: k not in ("samples_ms", "stamps_ms"))

    machine = describe_machine()
    print(f"\n**Supervisor benchmark** — {machine}; {N} programs each, idle windows of "
          f"{idle_s} s, {kills} kills, {reps} start run(s)\n")
    print("| | " + " | ".join(names) + " | target (ginit) |")
    print("|---|" + "---:|" * len(names) + "---|")
    for label, measurement, field, fmt, target in ROWS:
        print(f"| {label.format(s=idle_s)} | " + " | ".join(
            cell(results[n], measurement, field, fmt) for n in names) + f" | {target} |")
    if "median_ms" in baseline:
        print(f"\nIn every start figure: `unshare -p -f --mount-proc` running one stamp program "
              f"directly takes {baseline['median_ms']:.1f} ms (median of 3).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "baseline": baseline, "results": results}, f, indent=1)
    return 1 if any("error" in r for res in results.values() for r in res.values()) \
        or "error" in baseline else 0


if __name__ == "__main__":
    sys.exit(main())
