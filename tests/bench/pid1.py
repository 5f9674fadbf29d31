#!/usr/bin/env python3
"""Side-by-side benchmark of ginit against tini, dumb-init and catatonit.

Usage (as root, Linux; `make bench` does this):
    python3 tests/bench/pid1.py --ginit PATH --helper PATH [--baseline PATH] [--only a,b]
        [--quick] [--json OUT]

--baseline measures an earlier ginit too, as the column `ginit-before`, in the same run.

The peers come from Debian (`apt-get install tini dumb-init catatonit`, run here if they are
missing); tini is used as /usr/bin/tini-static. Measurements, per init:

  binary       Size in bytes of the executable, and whether it is static (`readelf -l`
               shows no program interpreter).
  idle         `unshare -p -f --mount-proc INIT -- HELPER sleep`: once the init (found as
               the child of unshare) sleeps and its child has exec'd the helper, VmRSS and
               RssAnon (private memory) from /proc/PID/status, then the context switches
               (voluntary + nonvoluntary) of the idle init over 5 s. An init that polls
               with a timeout shows up here.
  spawn        Cost of `INIT -- /bin/true` against `/bin/true` alone, both started with
               os.posix_spawn and reaped with waitpid, interleaved run by run to cancel
               drift; medians in microseconds and their ratio. The inits run as ordinary
               processes here (tini needs -s to be a subreaper when it is not PID 1).
  orphans      `HELPER orphans-bench 5000` under the init as PID 1 of a fresh PID namespace:
               5,000 double-forked orphans the init must reap. The helper reports the wall
               time until no zombie is left and the init's on-CPU time (schedstat delta);
               medians over 3 runs, plus the most zombies ever left (should be 0).
  latency      `HELPER trap --stamp` under the init as PID 1: the script sends SIGUSR1 to the
               init's host pid and reads the helper's CLOCK_MONOTONIC stamp of its handler;
               latency = stamp - time just before kill(). One signal in flight at a time,
               20 warm-up signals, then 1000 counted; median and p99 in microseconds.

Every child process is killed (SIGKILL to the init's host pid, then unshare is reaped) even
on errors; unshare also runs with --kill-child so the namespace dies with it. Every wait has a
deadline, and a failing measurement shows "error" in its cell (the exit status is then 1).
Raw figures are printed as they come and, with --json, written with every sample.
"""
import argparse, contextlib, json, os, re, select, signal, statistics, subprocess, sys
import tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (apt_install, cell, children, describe_machine,  # noqa: E402
                    end_namespace, exec_child, log, measure_all, proc_stat, wait_for)

PEERS = {"tini-static": "/usr/bin/tini-static", "dumb-init": "/usr/bin/dumb-init",
         "catatonit": "/usr/bin/catatonit"}
# name -> (help flag, text the help must show, argv prefix outside a namespace, as PID 1)
CLI = {"tini-static": ("-h", "-s: Register as a process subreaper", ["-s", "--"], ["--"]),
       "dumb-init": ("--help", "Usage:", ["--"], ["--"]),
       "catatonit": ("-h", "usage: catatonit", ["--"], ["--"]),
       "ginit": ("--help", "[--] PROGRAM", ["--"], ["--"])}


def ensure_peers():
    if all(os.access(p, os.X_OK) for p in PEERS.values()):
        return
    apt_install(["tini", "dumb-init", "catatonit"])


def run_text(argv, timeout=10):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    return r.stdout + r.stderr


def status(pid):
    """Numeric fields of /proc/PID/status (kB values without the unit)."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                fields[key] = int(parts[0])
    return fields


@contextlib.contextmanager
def ns_init(init_argv, helper_argv, stdout=subprocess.DEVNULL, need_pid=True):
    """Runs INIT as PID 1 of a new PID namespace; yields (unshare Popen, init host pid)."""
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(["unshare", "-p", "-f", "--mount-proc", "--kill-child",
                             *init_argv, *helper_argv],
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=err)
    try:
        def init_pid():
            kid = exec_child(proc.pid)
            if proc.poll() is not None:
                err.seek(0)
                raise RuntimeError(f"unshare exited ({proc.returncode}): {err.read()[-300:]!r}")
            return kid
        yield proc, wait_for(init_pid, 5, "the init to exec") if need_pid else None
    finally:
        end_namespace(proc)  # SIGKILL to every child of unshare
        if proc.stdout:
            proc.stdout.close()
        err.close()


def measure_binary(path, name):
    elf = run_text(["readelf", "-l", path])
    try:
        version = run_text([path, "--version" if name == "tini-static" else "-V"]).strip()
    except subprocess.TimeoutExpired:
        version = ""
    return {"path": path, "size": os.path.getsize(path), "static": "program interpreter" not in elf,
            "version": (version.splitlines() or ["?"])[0]}


def measure_idle(ns_argv, helper, seconds=5.0):
    with ns_init(ns_argv, [helper, "sleep"]) as (_, pid):
        def helper_child():
            for kid in children(pid):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{kid}/exe") == helper:
                        return kid
        wait_for(helper_child, 5, "the helper to exec")
        # Idle: the init sleeps (S) on 5 consecutive looks, 20 ms apart.
        streak = []

        def asleep():
            streak.append((proc_stat(pid) or "??")[1] == "S")
            return len(streak) >= 5 and all(streak[-5:])
        wait_for(asleep, 5, "the init to go idle", step=0.02)
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read().strip()
        st0 = status(pid)
        time.sleep(seconds)
        st1 = status(pid)
        ctx = lambda s: s["voluntary_ctxt_switches"] + s["nonvoluntary_ctxt_switches"]
        return {"wchan": wchan, "vmrss_kb": st0["VmRSS"], "rssanon_kb": st0["RssAnon"],
                "ctxsw": ctx(st1) - ctx(st0), "seconds": seconds}


def timed_spawn(argv, fds):
    """Wall time in ns of posix_spawn + waitpid of argv; exit status must be 0.

    The deadline (10 s) comes from a pidfd polled before waitpid: the same extra system calls
    for both commands, so it does not bias the ratio."""
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fds)
    pidfd = os.pidfd_open(pid)
    try:
        if not select.select([pidfd], [], [], 10)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"{argv} did not exit within 10 s")
        _, st = os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
    dt = time.perf_counter_ns() - t0
    if os.waitstatus_to_exitcode(st) != 0:
        raise RuntimeError(f"{argv} exited with {os.waitstatus_to_exitcode(st)}")
    return dt


def measure_spawn(host_argv, runs):
    devnull = os.open("/dev/null", os.O_WRONLY)
    fds = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    bare, wrapped = [], []
    try:
        for i in range(runs + 5):  # the first 5 pairs warm caches and are dropped
            b = timed_spawn(["/bin/true"], fds)
            w = timed_spawn([*host_argv, "/bin/true"], fds)
            if i >= 5:
                bare.append(b / 1e3)
                wrapped.append(w / 1e3)
    finally:
        os.close(devnull)
    mb, mw = statistics.median(bare), statistics.median(wrapped)
    return {"true_us": mb, "init_true_us": mw, "ratio": mw / mb, "runs": runs,
            "true_samples_us": bare, "init_true_samples_us": wrapped}


def measure_orphans(ns_argv, helper, n, reps):
    runs = []
    for i in range(reps):
        argv = [helper, "orphans-bench", str(n)]
        with ns_init(ns_argv, argv, subprocess.PIPE, need_pid=False) as (proc, _):
            out, _ = proc.communicate(timeout=120)
        m = re.search(r"elapsed_ms=([\d.]+) init_cpu_ms=([\d.]+) zombies=(\d+)", out.decode())
        if not m:
            raise RuntimeError(f"unexpected orphans-bench output {out!r}")
        runs.append({"elapsed_ms": float(m[1]), "init_cpu_ms": float(m[2]), "zombies": int(m[3])})
        log(f"    run {i + 1}/{reps}: {m[0]}")
    return {"n": n, "runs": runs,
            "init_cpu_ms": statistics.median(r["init_cpu_ms"] for r in runs),
            "elapsed_ms": statistics.median(r["elapsed_ms"] for r in runs),
            "zombies_max": max(r["zombies"] for r in runs)}


class LineReader:
    """Reads lines from a pipe fd with a deadline per line."""

    def __init__(self, fd):
        self.fd, self.buf = fd, b""

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError("no line from the helper in time")
            chunk = os.read(self.fd, 4096)
            if not chunk:
                raise EOFError("helper output closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


def measure_latency(ns_argv, helper, count, warmup=20):
    with ns_init(ns_argv, [helper, "trap", "--stamp"], stdout=subprocess.PIPE) as (proc, pid):
        reader = LineReader(proc.stdout.fileno())
        if reader.line(5) != "ready":
            raise RuntimeError("helper did not print ready")
        samples = []
        for i in range(warmup + count):
            t0 = time.monotonic_ns()
            os.kill(pid, signal.SIGUSR1)
            line = reader.line(2)
            m = re.fullmatch(r"got SIGUSR1 (\d+)", line)
            if not m:
                raise RuntimeError(f"unexpected helper line {line!r}")
            if i >= warmup:
                samples.append((int(m[1]) - t0) / 1e3)
    ranked = sorted(samples)
    return {"count": count, "median_us": statistics.median(samples),
            "p99_us": ranked[max(0, -(-99 * len(ranked) // 100) - 1)],
            "min_us": ranked[0], "max_us": ranked[-1]}


ROWS = [  # (label, measurement, field, format)
    ("version", "binary", "version", "{}"),
    ("binary size (bytes)", "binary", "size", "{:,}"),
    ("static (no ELF interpreter)", "binary", "static", "{}"),
    ("idle VmRSS (kB)", "idle", "vmrss_kb", "{}"),
    ("idle RssAnon (kB)", "idle", "rssanon_kb", "{}"),
    ("idle context switches / 5 s", "idle", "ctxsw", "{}"),
    ("idle wchan", "idle", "wchan", "`{}`"),
    ("`/bin/true` alone, median (µs)", "spawn", "true_us", "{:.0f}"),
    ("`INIT -- /bin/true`, median (µs)", "spawn", "init_true_us", "{:.0f}"),
    ("`INIT -- /bin/true` / `/bin/true`", "spawn", "ratio", "{:.2f}×"),
    ("5,000 orphans: init CPU, median (ms)", "orphans", "init_cpu_ms", "{:.1f}"),
    ("5,000 orphans: elapsed, median (ms)", "orphans", "elapsed_ms", "{:.1f}"),
    ("5,000 orphans: zombies left (max)", "orphans", "zombies_max", "{}"),
    ("SIGUSR1 forwarding latency, median (µs)", "latency", "median_us", "{:.1f}"),
    ("SIGUSR1 forwarding latency, p99 (µs)", "latency", "p99_us", "{:.1f}"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ginit", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--baseline", help="an earlier ginit, measured too as `ginit-before`")
    ap.add_argument("--only", help="comma-separated subset of: " + ", ".join([*PEERS, "ginit"]))
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    ap.add_argument("--json", help="also write the raw results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("pid1.py: needs root (unshare -p)")
    helper = os.path.realpath(args.helper)
    paths = {**PEERS, "ginit": os.path.realpath(args.ginit)}
    if args.baseline:
        paths["ginit-before"] = os.path.realpath(args.baseline)
        CLI["ginit-before"] = CLI["ginit"]
    names = args.only.split(",") if args.only else list(paths)
    if unknown := [n for n in names if n not in paths]:
        sys.exit(f"pid1.py: unknown init(s) {unknown}; choose from {list(paths)}")
    for p in (helper, paths["ginit"]):
        if not os.access(p, os.X_OK):
            sys.exit(f"pid1.py: {p} is not an executable")
    if any(n in PEERS for n in names):
        ensure_peers()
    spawn_runs, orphan_reps, signals = (30, 1, 200) if args.quick else (60, 3, 1000)

    results = {n: {} for n in names}
    for n in names:  # the help must show the flags this script relies on
        flag, expect, _, _ = CLI[n]
        try:
            ok = expect in run_text([paths[n], flag])
        except (OSError, subprocess.SubprocessError):
            ok = False
        if not ok:
            log(f"warning: `{n} {flag}` does not mention {expect!r}; its CLI may differ")

    steps = [("binary", lambda n: measure_binary(paths[n], n)),
             ("idle", lambda n: measure_idle([paths[n], *CLI[n][3]], helper)),
             ("spawn", lambda n: measure_spawn([paths[n], *CLI[n][2]], spawn_runs)),
             ("orphans", lambda n: measure_orphans([paths[n], *CLI[n][3]], helper, 5000,
                                                   orphan_reps)),
             ("latency", lambda n: measure_latency([paths[n], *CLI[n][3]], helper, signals))]
    measure_all(steps, names, results, lambda k: k != "runs" and "samples" not in k)

    machine = describe_machine()
    print(f"\n**PID 1 benchmark** — {machine}; {spawn_runs} spawn runs, "
          f"{orphan_reps} orphan run(s), {signals} signals per init\n")
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for label, measurement, field, fmt in ROWS:
        print(f"| {label} | " + " | ".join(cell(results[n], measurement, field, fmt)
                                           for n in names) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=1)
    return 1 if any("error" in r for res in results.values() for r in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
