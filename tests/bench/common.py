"""Helpers shared by the benchmark scripts of tests/bench (stdlib only).

The scripts run as `python3 tests/bench/X.py` and import this module after putting their own
directory first on sys.path.
"""
import contextlib, datetime, json, os, signal, subprocess, time

PM2_DIR = "/tmp/ginit-bench-pm2"  # where `npm install pm2` puts PM2 for the benchmarks


def log(msg):
    """Prints msg at once (the output may be a pipe)."""
    print(msg, flush=True)


def wait_for(pred, timeout, what, step=0.005):
    """Polls pred() every step s until it returns something truthy, and returns that; raises
    TimeoutError after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(step)


def cpu_ns(pid):
    """Time on CPU in nanoseconds (/proc/PID/schedstat: finer than the stat ticks)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def switches(pid):
    """Context switches of pid so far: each return from poll(2) of an idle ginit is one."""
    text = read(f"/proc/{pid}/status") or ""
    return sum(int(line.split()[1]) for line in text.splitlines()
               if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))


def pct(values, q):
    """The q-quantile of values (nearest rank)."""
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def free_port():
    """A loopback port free a moment ago."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, timeout=10):
    """One GET /metrics on a new loopback connection, read until ginit closes it."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = []
        while b := s.recv(65536):
            got.append(b)
    return b"".join(got)


def print_table(rows, results, json_path=None):
    """Prints `| measurement | figure | target |` for each (name, key, target, format) whose
    key was measured, and writes results as JSON to json_path if given."""
    print("\n| measurement | figure | target |\n|---|---:|---|")
    for name, key, target, fmt in rows:
        if key in results:
            print(f"| {name} | {fmt(results[key])} | {target} |")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)


def read(path):
    """The text of path, or None if it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def proc_stat(pid):
    """(comm, state, ppid) of pid from /proc/PID/stat, or None if it is gone."""
    text = read(f"/proc/{pid}/stat")
    if not text:
        return None
    close = text.rfind(")")
    fields = text[close + 2:].split()
    return text[text.index("(") + 1:close], fields[0], int(fields[1])


def children(ppid):
    """Host pids of the children of ppid."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st and st[2] == ppid:
                out.append(int(entry))
    return out


def exec_child(ppid):
    """The child of unshare ppid once it has exec'd the namespace's PID 1 (it is no longer
    called unshare), else None."""
    for entry in os.listdir("/proc"):
        st = proc_stat(int(entry)) if entry.isdigit() else None
        if st and st[2] == ppid and st[0] != "unshare":
            return int(entry)
    return None


def end_namespace(proc, init=None):
    """Ends the PID namespace of `unshare -p -f` proc: SIGKILL to its PID 1 (init, its host pid,
    or else every child of unshare), which takes every process of the namespace down; then
    unshare is reaped (SIGKILL to it too after 10 s)."""
    if proc.poll() is None:  # unshare not reaped yet, so its children's pids are still valid
        for kid in [init] if init else children(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(kid, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Namespace:
    """ARGV as PID 1 of a fresh PID namespace (`unshare -p -f --mount-proc --kill-child`), its
    output in logpath; t0 is the clock just before the spawn. close() (or leaving a `with`
    block) ends the namespace and reaps unshare."""

    step = 0.005  # how often pid1() looks for the exec'd PID 1

    def __init__(self, argv, env, logpath):
        self.log = open(logpath, "wb")
        self.t0 = time.monotonic_ns()
        self.proc = subprocess.Popen(["unshare", "-p", "-f", "--mount-proc", "--kill-child", *argv],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     env=env, start_new_session=True)
        self.init = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def exit_error(self):
        """The exception for an unshare that exited before its child exec'd."""
        return RuntimeError(f"unshare exited ({self.proc.returncode}); see {self.log.name}")

    def pid1(self):
        """Host pid of the namespace's PID 1, once unshare's child has exec'd the supervisor."""
        if self.init is None:
            def find():
                if self.proc.poll() is not None:
                    raise self.exit_error()
                return exec_child(self.proc.pid)
            self.init = wait_for(find, 10, "the supervisor to exec", step=self.step)
        return self.init

    def close(self):
        end_namespace(self.proc, self.init)
        self.log.close()


def apt_install(pkgs, *flags):
    """`apt-get install -y FLAGS PKGS`; if that fails, apt-get update and the install again
    (raising CalledProcessError if it fails again)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", *flags, *pkgs]
    if subprocess.run(install, env=env, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, timeout=600, check=True)
        subprocess.run(install, env=env, timeout=600, check=True)


def npm_install_pm2():
    """`npm install pm2` into PM2_DIR."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    os.makedirs(PM2_DIR, exist_ok=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", PM2_DIR, "pm2"],
                   env=env, timeout=600, check=True, stdin=subprocess.DEVNULL)


def pm2_version():
    """"pm2 VERSION" of the PM2 in PM2_DIR (OSError, KeyError or ValueError if it is not there)."""
    with open(f"{PM2_DIR}/node_modules/pm2/package.json") as f:
        return "pm2 " + json.load(f)["version"]


def measure_all(steps, names, results, keep):
    """For each (key, fn) of steps, fn(name) for every name in turn (one measurement for every
    contender, then the next: less drift between them) into results[name][key], or {"error":
    ...} if it raised (one failure must not abort the table); logs the figures whose key passes
    keep(key), floats rounded."""
    for key, fn in steps:
        for n in names:
            log(f"[{n}] {key}")
            try:
                results[n][key] = fn(n)
            except Exception as e:  # noqa: BLE001 - one failure must not abort the table
                results[n][key] = {"error": f"{type(e).__name__}: {e}"}
            raw = {k: (round(v, 2) if isinstance(v, float) else v)
                   for k, v in results[n][key].items() if keep(k)}
            log(f"    {raw}")


def describe_machine():
    """CPUs, kernel and local time, for the heading of a results table."""
    return (f"{len(os.sched_getaffinity(0))} CPUs (nproc), Linux {os.uname().release}, "
            f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")


def cell(res, measurement, field, fmt):
    """One table cell: res[measurement][field] formatted by fmt (booleans as yes/no), or
    "error" where the measurement failed."""
    value = res.get(measurement, {}).get(field)
    if isinstance(value, bool):
        value = "yes" if value else "no"
    return "error" if value is None else fmt.format(value)
