#!/usr/bin/env python3
"""Soak test: ginit as PID 1 through 10,000 restarts and 1 GiB of program output, with its
file descriptors, memory and CPU read before and after. Nothing may grow with the work done:
the fd count and the resident memory at the end are those of the start, and the CPU spent per
restart and per line is printed so a regression shows as a number.

Usage (as root, Linux; needs sh, yes and head in the namespace, as any Debian host has):
    python3 tests/bench/soak.py --ginit PATH --helper PATH [--restarts N] [--bytes N] [--json OUT]

Phases, each with ginit as PID 1 of a fresh PID namespace (`unshare -p -f --mount-proc`):

  restarts  two programs restarted without delay, 2,000 times to warm up (the restart window
            of one second fills: it remembers one time per restart), then N times (10,000):
            `crash` prints a line (`stdout: prefix`) and exits; `litter` leaves a process in
            its process group behind at each run (`sh -c 'HELPER sleep & exit 1'`), which
            ginit must stop with the group. ginit's stdout is read by this script. Figures
            after the warm-up ("before") and N restarts later ("after"): ginit's open fds, VmRSS,
            RssAnon, the processes in the namespace, and ginit's CPU per restart between.
  output    one program writes N bytes (1 GiB) of 60-byte lines: once with `stdout: prefix`
            to ginit's stdout (a pipe this script reads and counts, so every line is checked
            to arrive), once to a file rotated at 256 MiB (4 kept, so every line is still on
            disk and counted). Figures at the first 1/64 of the bytes and at the end: fds,
            VmRSS, RssAnon, and ginit's CPU per line.

ginit's CPU is /proc/PID/schedstat (nanoseconds on CPU). Every process started here is in the
namespace, which ends when its PID 1 is killed by pid; unshare runs with --kill-child.
"""
import argparse, json, os, select, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine, exec_child, end_namespace, log, read, wait_for  # noqa: E402

WARMUP = 2000  # restarts before the first figures
LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW\n"  # 60 bytes


def figures(pid):
    """fds, VmRSS and RssAnon (kB) and CPU ns of process pid."""
    status = read(f"/proc/{pid}/status") or ""
    kb = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            kb[key] = int(value.split()[0])
    with open(f"/proc/{pid}/schedstat") as f:
        cpu = int(f.read().split()[0])
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "vmrss_kb": kb.get("VmRSS"),
            "rssanon_kb": kb.get("RssAnon"), "cpu_ns": cpu}


def namespace_size(init):
    """Processes in the PID namespace whose PID 1 has host pid init (init included)."""
    want = os.readlink(f"/proc/{init}/ns/pid")
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == want:
                    n += 1
            except OSError:
                pass
    return n


class Ginit:
    """ginit -c CONFIG as PID 1 of a fresh namespace, its stdout a pipe read by drain()."""

    def __init__(self, ginit, config, stderr_path):
        self.ginit = ginit
        self.err = open(stderr_path, "wb")
        self.proc = subprocess.Popen(
            ["unshare", "-p", "-f", "--mount-proc", "--kill-child", ginit, "-c", config],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err,
            start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.init = wait_for(lambda: exec_child(self.proc.pid), 10, "ginit to exec")
        self.bytes = 0
        self.lines = 0

    def drain(self, seconds):
        """Reads ginit's stdout for up to `seconds`, counting bytes and lines."""
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                return
            self.bytes += len(chunk)
            self.lines += chunk.count(b"\n")

    def status(self, sock):
        r = subprocess.run([self.ginit, "--socket", sock, "status", "--json"],
                           capture_output=True, text=True, timeout=30)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def close(self):
        end_namespace(self.proc, self.init)
        self.err.close()


def restarts(args, tmp):
    sock = f"{tmp}/restarts.sock"
    cfg = f"{tmp}/restarts.yaml"
    with open(cfg, "w") as f:
        f.write(f"""control: {{socket: {sock}}}
programs:
  crash:
    command: [{args.helper}, print, "a line from a run that ends at once"]
    stdout: prefix
    backoff: {{initial: 0s, max: 0s}}
    max_restarts: 10000
    restart_window: 1s
  litter:
    command: [/bin/sh, -c, "{args.helper} sleep & exit 1"]
    stdout: prefix
    stop: {{timeout: 1s}}
    backoff: {{initial: 0s, max: 0s}}
    max_restarts: 10000
    restart_window: 1s
""")
    g = Ginit(args.ginit, cfg, f"{tmp}/restarts.stderr")
    try:
        def total():
            g.drain(0.05)
            st = g.status(sock)
            return sum(i["restarts"] for i in st["instances"]) if st else 0
        log(f"restarts: waiting for {WARMUP}, then {args.restarts} more")
        n0 = wait_for(lambda: (lambda n: n if n >= WARMUP else 0)(total()), 600, "the warm-up")
        before = figures(g.init)
        before["processes"] = namespace_size(g.init)
        t0 = time.monotonic()
        n1 = wait_for(lambda: (lambda n: n if n >= n0 + args.restarts else 0)(total()), 3600,
                      f"{args.restarts} restarts")
        elapsed = time.monotonic() - t0
        after = figures(g.init)
        after["processes"] = namespace_size(g.init)
        failed = [i for i in g.status(sock)["instances"] if i["state"] == "failed"]
        return {"before": before, "after": after, "restarts": n1 - n0,
                "cpu_us_per_restart": (after["cpu_ns"] - before["cpu_ns"]) / 1000 / (n1 - n0),
                "restarts_per_s": (n1 - n0) / elapsed, "failed": len(failed),
                "stdout_lines": g.lines}
    finally:
        g.close()


def output(args, tmp, dest):
    sock = f"{tmp}/output-{dest}.sock"
    cfg = f"{tmp}/output-{dest}.yaml"
    log_file = f"{tmp}/output.log"
    files = [log_file] + [f"{log_file}.{i}" for i in range(1, 5)]
    lines = args.bytes // len(LINE)
    sink = "prefix" if dest == "prefix" else \
        f"{{file: {log_file}, rotate: {{size: 256MiB, keep: 4}}}}"
    with open(cfg, "w") as f:
        f.write(f"""control: {{socket: {sock}}}
programs:
  talk:
    command: [/bin/sh, -c, "yes {LINE.decode().strip()} | head -c {lines * len(LINE)}"]
    stdout: {sink}
    restart: never
""")
    g = Ginit(args.ginit, cfg, f"{tmp}/output-{dest}.stderr")

    def delivered():
        """Lines that reached their destination so far."""
        g.drain(0.05)
        if dest == "prefix":
            return g.lines
        return sum(os.path.getsize(p) for p in files if os.path.exists(p)) // len(LINE)

    try:
        wait_for(lambda: delivered() >= lines // 64, 600, "the first part of the output")
        before = figures(g.init)
        seen = delivered()
        wait_for(lambda: delivered() >= lines, 3600, "every line")
        after = figures(g.init)
        return {"before": before, "after": after, "lines": lines, "delivered": delivered(),
                "cpu_ns_per_line": (after["cpu_ns"] - before["cpu_ns"]) / max(1, lines - seen)}
    finally:
        g.close()
        for p in files:
            if os.path.exists(p):
                os.remove(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ginit", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--restarts", type=int, default=10000)
    ap.add_argument("--bytes", type=int, default=1 << 30)
    ap.add_argument("--json")
    args = ap.parse_args()
    args.ginit = os.path.abspath(args.ginit)
    args.helper = os.path.abspath(args.helper)
    tmp = tempfile.mkdtemp(prefix="ginit-soak-")
    results = {}
    try:
        results["restarts"] = restarts(args, tmp)
        log(json.dumps(results["restarts"]))
        for dest in ("prefix", "file"):
            results[f"output_{dest}"] = output(args, tmp, dest)
            log(json.dumps(results[f"output_{dest}"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    r = results["restarts"]
    print(f"\nginit soak, {describe_machine()}\n")
    print("| | before | after |")
    print("|---|---:|---:|")
    print(f"| **{r['restarts']:,} restarts** ({r['restarts_per_s']:,.0f}/s, "
          f"{r['failed']} programs failed) | | |")
    for key, name in (("fds", "open fds"), ("vmrss_kb", "VmRSS (kB)"),
                      ("rssanon_kb", "RssAnon (kB)"), ("processes", "processes in the namespace")):
        print(f"| {name} | {r['before'][key]:,} | {r['after'][key]:,} |")
    print(f"| ginit CPU per restart (us) | | {r['cpu_us_per_restart']:.1f} |")
    for dest, name in (("prefix", "to ginit's stdout, `prefix`"), ("file", "to a rotated file")):
        o = results[f"output_{dest}"]
        print(f"| **{o['lines'] * len(LINE) / (1 << 30):.2f} GiB, {o['lines']:,} lines {name}** "
              f"({o['delivered']:,} delivered) | | |")
        for key, label in (("fds", "open fds"), ("vmrss_kb", "VmRSS (kB)"),
                           ("rssanon_kb", "RssAnon (kB)")):
            print(f"| {label} | {o['before'][key]:,} | {o['after'][key]:,} |")
        print(f"| ginit CPU per line (ns) | | {o['cpu_ns_per_line']:.0f} |")


if __name__ == "__main__":
    main()
