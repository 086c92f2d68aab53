#!/usr/bin/env python3
"""sandbox against `docker run`, measured in one run on one machine.

Each row times sandbox and the docker CLI given the same image, mount and
hardening, alternating the two pair by pair so drift on a shared machine
hits both alike. Medians, and the ratio sandbox/docker (below 1: sandbox is
faster). The first prompt of `sh` on a terminal (Python's pty) is set against
`docker run -it` the same way. `sandbox mcp`'s `run` is set against `sandbox run` from a shell
the same way, cold and warm, with the server's peak RSS. A second table sets the allow-list's proxy against the open bridge,
both under sandbox, timed inside the container against a server on the
host. Writes bench/results.md and bench/results.svg.

    python3 bench/bench.py [--runs 30] [--reps 3] [--quick]

Standard library only. Needs a running engine (`make engine`) and builds its
own images from the host's static busybox and curl: nothing is pulled.
Builds sandbox with cargo into $CARGO_TARGET_DIR when set, else target/.
"""

import argparse
import atexit
import datetime
import functools
import http.server
import ipaddress
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# cargo runs in ROOT, so a relative CARGO_TARGET_DIR is relative to ROOT.
TARGET = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
SANDBOX = os.path.join(TARGET, "release", "sandbox")
IMAGE = "sandbox-bench/busybox:1"
BUSYBOX = "/usr/bin/busybox"
CURL_IMAGE = "sandbox-bench/curl:1"
HOST = "bench.test"
REQUESTS = 200
BIG = 100_000_000
LABEL = "dev.sandbox.bench=1"
GB = 1_000_000_000


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build(workspace):
    sh("cargo", "build", "--release", "--locked", "--quiet", cwd=ROOT)
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy(BUSYBOX, os.path.join(ctx, "busybox"))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write('FROM scratch\nCOPY busybox /bin/busybox\n'
                    'RUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\n')
        sh("docker", "build", "-q", "-t", IMAGE, ctx, stdout=subprocess.DEVNULL,
           env={**os.environ, "DOCKER_BUILDKIT": "0"})
    # The same image plus the host's curl and the libraries it links, as
    # tests/common/images.rs builds its curl image.
    ldd = subprocess.run(["ldd", "/usr/bin/curl"], check=True, capture_output=True,
                         text=True).stdout
    files = ["/usr/bin/curl"]
    for line in ldd.splitlines():
        path = line.split("=>")[-1].strip().split(" (")[0].strip()
        if path.startswith("/"):
            files.append(path)
    with tempfile.TemporaryDirectory() as ctx:
        for file in files:
            copy = os.path.join(ctx, "root", file.lstrip("/"))
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            shutil.copy(file, copy)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(f"FROM {IMAGE}\nCOPY root/ /\nENV PATH=/usr/bin:/bin\n")
        sh("docker", "build", "-q", "-t", CURL_IMAGE, ctx, stdout=subprocess.DEVNULL,
           env={**os.environ, "DOCKER_BUILDKIT": "0"})


def sandbox_cmd(*args, warm=False, image=IMAGE, net=()):
    """`sandbox run`: cold (--no-warm), warm (--warm), or as configured (None:
    warm by default where it applies)."""
    cmd = [SANDBOX, "run", "--image", image, "--pull", "never", "--no-cache"]
    flag = {False: ["--no-warm"], True: ["--warm"], None: []}[warm]
    return cmd + flag + list(net) + list(args)


def docker_cmd(workspace, *args, stdin=False):
    """`docker run --rm` with what sandbox sets (see `sandbox run --dry-run`)."""
    uid, gid = os.getuid(), os.getgid()
    cmd = ["docker", "run", "--rm"] + (["-i"] if stdin else []) + [
        "--label", LABEL,
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--security-opt", f"seccomp={ROOT}/profiles/default.json",
        "--read-only",
        "--tmpfs", "/tmp:rw,exec,nosuid,nodev,size=1g,mode=1777",
        "--tmpfs", f"/home/sandbox:rw,exec,nosuid,nodev,size=1g,mode=0700,uid={uid},gid={gid}",
        "--memory", "4g", "--memory-swap", "4g",
        "--pids-limit", "512",
        "--init",
        "--user", f"{uid}:{gid}",
        "--mount", f"type=bind,source={workspace},target=/work",
        "-w", "/work",
        "-e", "HOME=/home/sandbox",
        IMAGE,
    ]
    return cmd + list(args)


class HighWater(threading.Thread):
    """The peak RSS (KiB) of a running process, from its own VmHWM, read
    until it exits. Not wait4's ru_maxrss: Linux carries that across fork
    and exec, so a child of this script would report Python's own peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.kib = pid, 0
        self.start()

    def run(self):
        while True:
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    status = f.read()
            except OSError:
                return
            if "\nState:\tZ" in status:
                return
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.kib = max(self.kib, int(line.split()[1]))
            time.sleep(0.002)

    def peak(self):
        self.join()
        return self.kib


def timed(cmd, stdin=subprocess.DEVNULL, cwd=None, env=None):
    """Wall seconds and peak RSS (KiB) of one run, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=cwd, env=env)
    rss = HighWater(proc.pid)
    _, status, _ = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed, rss.peak()


def pairs(n, a, b):
    """Runs a() and b() n times each, alternating which goes first."""
    ra, rb = [], []
    for i in range(n):
        order = [(a, ra), (b, rb)]
        if random.random() < 0.5:
            order.reverse()
        for fn, acc in order:
            acc.append(fn())
    return ra, rb


def rounds(n, *fns):
    """Runs each of fns n times, in a new random order each round."""
    out = [[] for _ in fns]
    for _ in range(n):
        order = list(range(len(fns)))
        random.shuffle(order)
        for i in order:
            out[i].append(fns[i]())
    return out


class Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves a directory without logging, file bodies with sendfile."""
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        self.wfile.flush()
        self.connection.sendfile(source)


def serve(directory):
    """An HTTP server on the engine's bridge gateway, in a thread:
    (server, gateway address, port)."""
    config = subprocess.run(
        ["docker", "network", "inspect", "bridge", "-f",
         "{{(index .IPAM.Config 0).Gateway}} {{(index .IPAM.Config 0).Subnet}}"],
        check=True, capture_output=True, text=True).stdout.split()
    # Some engines leave the gateway out of the bridge's IPAM config: it is
    # then the subnet's first address, as the engine assigns it.
    gateway = config[0] if len(config) == 2 else str(next(ipaddress.ip_network(config[-1]).hosts()))
    handler = functools.partial(Quiet, directory=directory)
    server = http.server.ThreadingHTTPServer((gateway, 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, gateway, server.server_address[1]


def in_container(cmd, cwd):
    """The numbers a run printed on its last line; the run must succeed."""
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, cwd=cwd)
    lines = proc.stdout.split("\n")
    last = [l for l in lines if l.strip()][-1:] or [""]
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stdout[-500:]}{proc.stderr[-1000:]}")
    return [float(x) for x in last[0].split()]


def requests_cmd(url, net):
    """REQUESTS sequential curls of url in one run; prints the sum of
    their time_total (seconds), curl's own start-up left out."""
    script = (f"i=0; while [ $i -lt {REQUESTS} ]; do "
              f"curl -sf -o /dev/null -w '%{{time_total}}\\n' {url} || exit 1; "
              "i=$((i+1)); done | awk '{s+=$1; n++} END {if (n != "
              f"{REQUESTS}) exit 1; print s}}'")
    return sandbox_cmd("sh", "-c", "set -o pipefail; " + script, image=CURL_IMAGE, net=net)


def download_cmd(url, net, tunnel=False):
    """One download of url; prints seconds and bytes. `tunnel`: through a
    CONNECT tunnel (curl -p), as every HTTPS request through the proxy goes."""
    return sandbox_cmd("curl", "-sf", *(["-p"] if tunnel else []), "-o", "/dev/null", "-w",
                       "%{time_total} %{size_download}\n", url, image=CURL_IMAGE, net=net)


def remove_containers(workspace):
    """Every container of `workspace`'s: the warm ones still waiting."""
    ours = subprocess.run(["docker", "ps", "-aq", "--filter",
                           f"label=dev.sandbox.workspace={workspace}"],
                          capture_output=True, text=True).stdout.split()
    if ours:
        sh("docker", "rm", "-f", *ours, stdout=subprocess.DEVNULL)


def wait_warm(workspace, timeout=30, fifos=None):
    """Until this workspace's next warm container is up: with `fifos`, one
    whose command's stdio goes through FIFOs (True) or not (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ids = subprocess.run(
            ["docker", "ps", "-q", "--filter", "label=dev.sandbox.warm",
             "--filter", f"label=dev.sandbox.workspace={workspace}",
             "--filter", "status=running", "--filter", "name=sandbox-warm-"],
            capture_output=True, text=True).stdout.split()
        mounts = subprocess.run(
            ["docker", "inspect", "-f", "{{range .Mounts}}{{.Destination}} {{end}}", *ids],
            capture_output=True, text=True).stdout.splitlines() if ids else []
        if any(fifos is None or ("/.sandbox-stdio" in m.split()) == fifos for m in mounts):
            return
        time.sleep(0.05)
    raise SystemExit("no warm container came up")


def stream_out(cmd, cwd, env=None):
    """Seconds to read 1 GB from cmd's stdout, checking the count; seconds
    from the first byte on; peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=cwd, env=env)
    rss = HighWater(proc.pid)
    total, first = 0, None
    while chunk := proc.stdout.read(1 << 20):
        first = first or time.perf_counter()
        total += len(chunk)
    _, status, _ = os.wait4(proc.pid, 0)
    end = time.perf_counter()
    if total != GB or os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stdout: {total} bytes, status {status}: {' '.join(cmd)}")
    return end - start, end - first, rss.peak()


def stream_in(cmd, cwd, env=None):
    """Seconds to push 1 GB into cmd's stdin, which counts it in blocks of
    1 MB (dd's `1000+0 records in`); seconds from the first megabyte taken
    on; peak RSS."""
    block = b"\0" * 1_000_000
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=cwd, env=env)
    rss = HighWater(proc.pid)
    first = []

    def feed():
        for _ in range(GB // len(block)):
            proc.stdin.write(block)
            if not first:
                first.append(time.perf_counter())
        proc.stdin.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    out = proc.stdout.read()
    feeder.join()
    _, status, _ = os.wait4(proc.pid, 0)
    end = time.perf_counter()
    if b"1000+0 records in" not in out or os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stdin: {out!r}, status {status}: {' '.join(cmd)}")
    return end - start, end - first[0], rss.peak()


# 1 GB out and in, in blocks of 1 MB on both sides: busybox's `head -c` and
# `wc -c` copy 4 KiB at a time and would measure themselves, not the pipe.
PRODUCE = ["dd", "if=/dev/zero", "bs=1000000", "count=1000"]
CONSUME = ["dd", "of=/dev/null", "bs=1000000", "iflag=fullblock"]


def pipe_rows(workspace, reps, row):
    """1 GB through stdout and through stdin: sandbox through its FIFOs and
    through the engine's attach stream (`container.fast_pipes: false`),
    against docker run, in the same rounds. Through FIFOs warm, each run
    waiting untimed for its container, as a run by default does; through the
    attach stream cold, as docker run is. The throughput notes time from the
    first byte on, start-up left out."""
    attach = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    attach.write("container:\n  fast_pipes: false\n")
    attach.close()
    env_attach = dict(os.environ, SANDBOX_CONFIG=attach.name)
    notes, rss = [], {}

    def warm_first(fn):
        def timed_warm():
            wait_warm(workspace, fifos=True)
            return fn()
        return timed_warm

    for name, stream, cmd, docker_stdin in [("stdout", stream_out, PRODUCE, False),
                                            ("stdin", stream_in, CONSUME, True)]:
        fifos = lambda: stream(sandbox_cmd(*cmd, warm=True), workspace)
        engine = lambda: stream(sandbox_cmd(*cmd), workspace, env_attach)
        timed(sandbox_cmd("true", warm=True), cwd=workspace)
        # The bound: the same dd on this machine, through a plain pipe.
        native = lambda: stream([BUSYBOX, *cmd], workspace)
        a, b, c, d = rounds(reps, warm_first(fifos), engine,
                            lambda: stream(docker_cmd(workspace, *cmd, stdin=docker_stdin),
                                           workspace), native)
        row(f"1 GB through {name}", [x[0] for x in a], [x[0] for x in c])
        row(f"1 GB through {name}, attach stream", [x[0] for x in b], [x[0] for x in c])
        rate = lambda xs: GB / statistics.median([x[1] for x in xs]) / 1e6
        notes.append(f"{name}: sandbox {rate(a):.0f} MB/s through FIFOs, {rate(b):.0f} MB/s "
                     f"through the attach stream, docker {rate(c):.0f} MB/s "
                     f"({rate(a) / rate(c):.1f}x), a plain pipe on the host {rate(d):.0f} MB/s")
        rss[name] = (max(x[2] for x in a), max(x[2] for x in b), max(x[2] for x in c))
    os.unlink(attach.name)
    return notes, rss


def batch(cmds, cwd):
    """Wall seconds for all of cmds at once; every one must succeed."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=cwd) for c in cmds]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"{sum(1 for c in codes if c)} of {len(cmds)} runs failed")
    return elapsed


def left_behind(workspace):
    out = subprocess.run(["docker", "ps", "-aq", "--filter",
                          f"label=dev.sandbox.workspace={workspace}"],
                         capture_output=True, text=True).stdout.split()
    names = subprocess.run(["docker", "ps", "-a", "--filter",
                            f"label=dev.sandbox.workspace={workspace}",
                            "--format", "{{.Names}}"],
                           capture_output=True, text=True).stdout.split()
    return [i for i, n in zip(out, names) if not n.startswith("sandbox-warm-")]


class Mcp:
    """`sandbox mcp` over stdio, spoken with the standard library: JSON-RPC
    lines, as an agent's client sends them."""

    def __init__(self, workspace, *flags, cold=False):
        # Warm by default, as `sandbox run`: a cold server's runs read a
        # configuration that turns it off.
        config = ["--config", cold_config()] if cold else []
        self.proc = subprocess.Popen([SANDBOX, *config, "mcp", "--workspace", workspace, *flags],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0)
        self.ids, self.pending, self.answers = 0, b"", {}
        self.wait(self.send("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                           "clientInfo": {"name": "bench", "version": "0"}}),
                  ran=False)
        self.proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def send(self, method, params):
        self.ids += 1
        line = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params}
        self.proc.stdin.write(json.dumps(line).encode() + b"\n")
        return self.ids

    def run(self, *command):
        return self.send("tools/call", {"name": "run", "arguments": {
            "command": list(command), "image": IMAGE}})

    def wait(self, id, ran=True):
        """The result of request `id`, which must not be an error (nor, when
        `ran`, a run that failed)."""
        while id not in self.answers:
            while b"\n" not in self.pending:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise SystemExit("sandbox mcp closed its stdout")
                self.pending += chunk
            line, self.pending = self.pending.split(b"\n", 1)
            message = json.loads(line)
            if "id" in message:
                self.answers[message["id"]] = message
        answer = self.answers.pop(id)
        result = answer.get("result", {})
        if "error" in answer or result.get("isError") or \
                (ran and result.get("structuredContent", {}).get("exit_code") != 0):
            raise SystemExit(f"sandbox mcp: {answer}")
        return result

    def call(self):
        """Seconds for one `run` of `true`, request to answer."""
        start = time.perf_counter()
        self.wait(self.run("true"))
        return time.perf_counter() - start

    def peak_rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def close(self):
        self.proc.stdin.close()
        if self.proc.wait(60) != 0:
            raise SystemExit(f"sandbox mcp exited with {self.proc.returncode}")


def mcp_rows(runs):
    """`run` through `sandbox mcp` against `sandbox run` from a shell, with
    the same image and flags: cold, warm, and ten calls in flight, in a
    workspace of their own (so the warm containers waited for are theirs).
    Returns the results' section, in lines."""
    workspace = tempfile.mkdtemp(prefix="sandbox-bench-mcp-")
    os.chmod(workspace, 0o755)
    try:
        return mcp_rows_in(runs, workspace)
    finally:
        remove_containers(workspace)
        shutil.rmtree(workspace, ignore_errors=True)


def mcp_rows_in(runs, workspace):
    shell = lambda *flags: [SANDBOX, "-q", "run", "-w", workspace, f"--image={IMAGE}",
                            *(flags or ["--no-warm"]), "--", "true"]
    rows, left = [], lambda: left_behind(workspace)

    def row(name, a, b):
        rows.append((name, a, b))
        print(f"{name:32} mcp {median_ms(a):9.1f} ms  shell {median_ms(b):9.1f} ms  "
              f"ratio {statistics.median(a) / statistics.median(b):.2f}", flush=True)

    cold = Mcp(workspace, cold=True)
    cold.call()
    a, b = pairs(runs, cold.call, lambda: timed(shell(), cwd=workspace)[0])
    row("`true`, cold", a, b)
    cold.close()

    warm = Mcp(workspace, "--warm")
    warm.call()
    timed(shell("--warm"), cwd=workspace)

    def after_warm(fn):
        def timed_warm():
            wait_warm(workspace)
            return fn()
        return timed_warm

    a, b = pairs(runs, after_warm(warm.call), after_warm(lambda: timed(shell("--warm"),
                                                                       cwd=workspace)[0]))
    row("`true`, warm", a, b)
    warm.close()

    # Ten calls in flight at once, against ten `sandbox run`s at once.
    many = Mcp(workspace, "--max-concurrent", "10", cold=True)
    many.call()
    start = time.perf_counter()
    for id in [many.run("true") for _ in range(10)]:
        many.wait(id)
    through = time.perf_counter() - start
    rss = many.peak_rss_kib()
    many.close()
    direct = batch([shell()] * 10, workspace)
    row("ten `true` at once (wall)", [through], [direct])
    if left():
        raise SystemExit("containers left after the MCP runs")
    (_, cold_a, cold_b), (_, warm_a, warm_b), _ = rows
    return [
        "",
        "`sandbox mcp`: `run` of `true` through the server (stdio, request to answer,",
        "the server already up) against `sandbox run` of the same from a shell, same",
        "image and flags, pair by pair. Warm rows wait, untimed, for the next warm",
        "container before each run, as the rows above do.",
        "",
        "| | through MCP (median) | sandbox run (median) | MCP / shell |",
        "| --- | --- | --- | --- |",
    ] + [
        f"| {name} | {median_ms(a):.1f} ms | {median_ms(b):.1f} ms | "
        f"{statistics.median(a) / statistics.median(b):.2f} |"
        for name, a, b in rows
    ] + [
        "",
        f"Calls per second, one at a time: cold {1 / statistics.median(cold_a):.1f} "
        f"(shell {1 / statistics.median(cold_b):.1f}), warm {1 / statistics.median(warm_a):.1f} "
        f"(shell {1 / statistics.median(warm_b):.1f}); ten at once: {10 / through:.1f} "
        f"(shell {10 / direct:.1f}).",
        f"Peak RSS of the server with ten calls in flight: {rss / 1024:.1f} MiB.",
    ]


@functools.cache
def cold_config():
    """A configuration file that turns warm starts off, for a cold server."""
    fd, path = tempfile.mkstemp(prefix="sandbox-bench-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write("container:\n  warm: false\n")
    atexit.register(os.unlink, path)
    return path


def first_prompt(cmd, cwd, rows=24, cols=80):
    """Seconds from starting `cmd` on a new terminal of rows x cols until a
    shell's prompt shows on it; the shell is then ended, untimed."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def own_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                            preexec_fn=own_terminal, env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    seen, elapsed = b"", None
    try:
        while elapsed is None and time.perf_counter() - start < 60:
            if not select.select([master], [], [], 1)[0]:
                continue
            chunk = os.read(master, 1 << 16)
            seen += chunk
            # busybox's line editor asks where the cursor is and waits for
            # a terminal's answer.
            if b"\x1b[6n" in chunk:
                os.write(master, b"\x1b[1;1R")
            if b"/work # " in seen or b"/work $ " in seen:
                elapsed = time.perf_counter() - start
        if elapsed is None:
            raise SystemExit(f"no prompt from {' '.join(cmd)}: {seen[-200:]!r}")
        os.write(master, b"exit\r")
        while select.select([master], [], [], 5)[0] and os.read(master, 1 << 16):
            pass
    except OSError:
        pass
    finally:
        if proc.wait(30) != 0:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
        os.close(master)
    return elapsed


def terminal_rows(runs, row):
    """`true` warm by default (no flag) against `docker run`, and the first
    prompt of `sh` on a terminal (warm) against `docker run -it`, pair by
    pair. Before each timed run, either side, the next warm container is
    waited for, untimed, so neither shares the engine with its preparation.
    A workspace of its own, so the warm containers waited for are these
    runs' (one for runs without a terminal, then one with)."""
    workspace = tempfile.mkdtemp(prefix="sandbox-bench-tty-")
    os.chmod(workspace, 0o755)
    waited = lambda fn: (lambda: (wait_warm(workspace), fn())[1])
    try:
        timed(sandbox_cmd("true", warm=None), cwd=workspace)
        a, b = pairs(runs, waited(lambda: timed(sandbox_cmd("true", warm=None), cwd=workspace)),
                     waited(lambda: timed(docker_cmd(workspace, "true"), cwd=workspace)))
        row("`true`, warm by default (no flag)", [x[0] for x in a], [x[0] for x in b])
        remove_containers(workspace)
        docker_it = docker_cmd(workspace, "sh", stdin=True)
        docker_it.insert(2, "-t")
        first_prompt(sandbox_cmd("sh", warm=None), workspace)
        first_prompt(docker_it, workspace)
        a, b = pairs(runs, waited(lambda: first_prompt(sandbox_cmd("sh", warm=None), workspace)),
                     waited(lambda: first_prompt(docker_it, workspace)))
        row("first prompt of `sh` on a terminal, warm (vs -it)", a, b)
        if left_behind(workspace):
            raise SystemExit("containers left after the terminal runs")
    finally:
        remove_containers(workspace)
        shutil.rmtree(workspace, ignore_errors=True)


def median_ms(xs):
    return statistics.median(xs) * 1000


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}, Docker engine {engine}"


def svg(rows, path):
    """A bar per row: the ratio sandbox/docker, with a line at 1.0."""
    width, bar_h, gap, left = 640, 22, 8, 250
    scale = (width - left - 40) / max(1.2, max(r[3] for r in rows) * 1.1)
    height = len(rows) * (bar_h + gap) + 50
    x1 = left + scale
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="16">sandbox / docker run (below 1.0: sandbox is faster)</text>']
    for i, (name, _, _, ratio) in enumerate(rows):
        y = 28 + i * (bar_h + gap)
        colour = "#2a7" if ratio <= 1 else "#c63"
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{name}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{ratio * scale:.1f}" height="{bar_h}" '
                   f'fill="{colour}"/>')
        out.append(f'<text x="{left + ratio * scale + 4:.1f}" y="{y + 15}">{ratio:.2f}</text>')
    out.append(f'<line x1="{x1:.1f}" y1="24" x2="{x1:.1f}" y2="{height - 8}" stroke="#000" '
               f'stroke-dasharray="4 3"/>')
    out.append("</svg>\n")
    with open(path, "w") as f:
        f.write("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30, help="pairs for start-up rows")
    ap.add_argument("--reps", type=int, default=3, help="pairs for 1 GB rows")
    ap.add_argument("--quick", action="store_true", help="few runs, no 64-way row")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.reps = 6, 1

    workspace = tempfile.mkdtemp(prefix="sandbox-bench-")
    os.chmod(workspace, 0o755)
    build(workspace)
    began = time.time()
    rows, notes = [], []

    def row(name, a, b, unit="ms"):
        ratio = statistics.median(a) / statistics.median(b)
        rows.append((name, a, b, ratio))
        print(f"{name:32} sandbox {median_ms(a):9.1f} {unit}  docker {median_ms(b):9.1f} "
              f"{unit}  ratio {ratio:.2f}", flush=True)

    run = lambda cmd: (lambda: timed(cmd, cwd=workspace))
    # Untimed: page cache, image layers, the engine's own warm-up.
    for _ in range(2):
        timed(sandbox_cmd("true"), cwd=workspace)
        timed(docker_cmd(workspace, "true"), cwd=workspace)

    a, b = pairs(args.runs, run(sandbox_cmd("true")), run(docker_cmd(workspace, "true")))
    row("`true`, cold", [x[0] for x in a], [x[0] for x in b])
    rss_run = (max(x[1] for x in a), max(x[1] for x in b))

    # In a git repository sandbox makes the run's own git directory and
    # hands HEAD and the index back; docker run mounts the repository as is.
    repo = os.path.join(workspace, "repo")
    os.mkdir(repo)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    sh(*git, "init", "-q", repo)
    with open(os.path.join(repo, "README"), "w") as f:
        f.write("bench\n")
    sh(*git, "-C", repo, "add", "README")
    sh(*git, "-C", repo, "commit", "-qm", "bench")
    a, b = pairs(args.runs, lambda: timed(sandbox_cmd("true"), cwd=repo),
                 lambda: timed(docker_cmd(repo, "true"), cwd=repo))
    row("`true`, cold, in a git repository", [x[0] for x in a], [x[0] for x in b])

    # Warm: the container is prepared between runs, untimed, as it would be
    # while a person or an agent reads the last result.
    timed(sandbox_cmd("true", warm=True), cwd=workspace)
    warm = []
    for _ in range(args.runs):
        wait_warm(workspace)
        warm.append(timed(sandbox_cmd("true", warm=True), cwd=workspace)[0])
    cold_docker = [x[0] for x in b]
    row("`true`, warm (--warm)", warm, cold_docker)
    terminal_rows(args.runs, row)

    pipe_notes, pipe_rss = pipe_rows(workspace, args.reps, row)

    for n in ([16] if args.quick else [16, 64]):
        sb = batch([sandbox_cmd("true")] * n, workspace)
        dk = batch([docker_cmd(workspace, "true")] * n, workspace)
        row(f"{n} runs at once", [sb], [dk])
        if left_behind(workspace):
            raise SystemExit(f"containers left after {n} runs at once")

    a, b = pairs(args.runs * 2, run([SANDBOX, "--version"]), run(["docker", "--version"]))
    row("`--version` start-up", [x[0] for x in a], [x[0] for x in b])

    mcp_lines = mcp_rows(args.runs)

    # The allow-list: a closed network and an egress container per run.
    # Untimed first: the first run builds the sandbox-egress image.
    allow = ["--allow-host", HOST]
    timed(sandbox_cmd("true", net=allow), cwd=workspace)
    timed(sandbox_cmd("true", net=allow), cwd=workspace)
    a, b, c = rounds(args.runs, run(sandbox_cmd("true", net=allow)),
                     run(docker_cmd(workspace, "true")), run(sandbox_cmd("true")))
    row("`true`, allow-list", [x[0] for x in a], [x[0] for x in b])
    allow_true, allow_cold = [x[0] for x in a], [x[0] for x in c]
    if left_behind(workspace):
        raise SystemExit("containers left after the allow-list runs")

    # Through the proxy against the open bridge, both under sandbox, timed
    # inside the container against a server on the host's bridge gateway.
    proxied = []
    files = tempfile.mkdtemp(prefix="sandbox-bench-www-")
    server = None
    try:
        with open(os.path.join(files, "small"), "wb") as f:
            f.write(b"sandbox bench\n")
        with open(os.path.join(files, "big"), "wb") as f:
            block = os.urandom(1 << 20)
            for left in range(BIG, 0, -len(block)):
                f.write(block[:min(left, len(block))])
        server, gateway, port = serve(files)
        via = ["--allow-host", f"{HOST}:{port}", "--resolve", f"{HOST}:{gateway}"]
        direct = ["--network", "bridge"]
        through, straight = f"http://{HOST}:{port}", f"http://{gateway}:{port}"
        ic = lambda cmd: (lambda: in_container(cmd, workspace))
        # Untimed: the server, the page cache, the curl image.
        in_container(download_cmd(f"{through}/big", via), workspace)
        in_container(download_cmd(f"{straight}/big", direct), workspace)

        a, b = pairs(args.reps, ic(requests_cmd(f"{through}/small", via)),
                     ic(requests_cmd(f"{straight}/small", direct)))
        a = [x[0] / REQUESTS for x in a]
        b = [x[0] / REQUESTS for x in b]
        proxied.append((f"{REQUESTS} requests, per request", a, b,
                        statistics.median(a) / statistics.median(b)))
        print(f"{proxied[-1][0]:32} proxy {median_ms(a):9.2f} ms  direct {median_ms(b):9.2f} ms  "
              f"added {median_ms(a) - median_ms(b):.2f} ms", flush=True)

        for name, tunnel in [("100 MB download, CONNECT tunnel (as HTTPS)", True),
                             ("100 MB download, plain HTTP forwarded", False)]:
            a, b = pairs(args.reps, ic(download_cmd(f"{through}/big", via, tunnel)),
                         ic(download_cmd(f"{straight}/big", direct)))
            if any(x[1] != BIG for x in a + b):
                raise SystemExit(f"downloads short: {[x[1] for x in a + b]}")
            a, b = [x[0] for x in a], [x[0] for x in b]
            proxied.append((name, a, b, statistics.median(a) / statistics.median(b)))
            print(f"{name:32} proxy {BIG / statistics.median(a) / 1e6:9.0f} MB/s  "
                  f"direct {BIG / statistics.median(b) / 1e6:9.0f} MB/s  "
                  f"rate ratio {statistics.median(b) / statistics.median(a):.2f}", flush=True)
    finally:
        if server:
            server.shutdown()
            server.server_close()
        shutil.rmtree(files, ignore_errors=True)
    if left_behind(workspace):
        raise SystemExit("containers left after the proxy runs")
    nets = subprocess.run(["docker", "network", "ls", "-q", "--filter",
                           f"label=dev.sandbox.workspace={workspace}"],
                          capture_output=True, text=True).stdout.split()
    if nets:
        raise SystemExit(f"networks left after the allow-list runs: {nets}")

    # The warm container still waiting for this workspace, and nothing else.
    remove_containers(workspace)
    subprocess.run(["docker", "container", "prune", "-f", "--filter", f"label={LABEL}"],
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(workspace, ignore_errors=True)

    today = datetime.date.today().isoformat()
    lines = [
        "# Benchmark results",
        "",
        f"{today}, one run of `make bench` on {machine()}. A shared, noisy machine:",
        "read the ratios, measured pair by pair in the same run, not the absolute times.",
        "",
        "| | sandbox (median) | docker run (median) | sandbox / docker |",
        "| --- | --- | --- | --- |",
    ]
    for name, a, b, ratio in rows:
        lines.append(f"| {name} | {median_ms(a):.1f} ms | {median_ms(b):.1f} ms | {ratio:.2f} |")
    (req_name, req_a, req_b, req_ratio), *downloads = proxied
    lines += [
        "",
        "The allow-list: the start-up it adds over sandbox's own cold `true`, measured",
        f"in the same rounds, is {median_ms(allow_true) - median_ms(allow_cold):.0f} ms "
        f"(median {median_ms(allow_true):.0f} ms against {median_ms(allow_cold):.0f} ms).",
        "Below, both columns are sandbox: through the allow-list's proxy against straight",
        "out on the bridge, timed inside the container (curl's `time_total`) against a",
        f"server on the host's bridge gateway; one run of {REQUESTS} sequential `curl`s "
        "for the requests, one download per run of 100 MB.",
        "",
        "| | through the proxy | direct (bridge) | proxy / direct |",
        "| --- | --- | --- | --- |",
        f"| {req_name} | {median_ms(req_a):.2f} ms | {median_ms(req_b):.2f} ms | "
        f"{req_ratio:.2f} (+{median_ms(req_a) - median_ms(req_b):.2f} ms) |",
    ] + [
        f"| {dl_name} | {BIG / statistics.median(dl_a) / 1e6:.0f} MB/s | "
        f"{BIG / statistics.median(dl_b) / 1e6:.0f} MB/s | {1 / dl_ratio:.2f} of the rate |"
        for dl_name, dl_a, dl_b, dl_ratio in downloads
    ] + [
        "",
        f"Start-up latency p10/p90: sandbox {pct(rows[0][1], .1):.0f}/{pct(rows[0][1], .9):.0f} ms, "
        f"docker {pct(rows[0][2], .1):.0f}/{pct(rows[0][2], .9):.0f} ms; "
        f"warm {pct(warm, .1):.0f}/{pct(warm, .9):.0f} ms.",
        "Throughput from the first byte on (1 GB rows, median): " + "; ".join(pipe_notes) + ".",
        f"Peak RSS of the client process: `true` sandbox {rss_run[0] / 1024:.1f} MiB, "
        f"docker CLI {rss_run[1] / 1024:.1f} MiB; "
        + "; ".join(f"1 GB {name} sandbox {r[0] / 1024:.1f} MiB (FIFOs), {r[1] / 1024:.1f} MiB "
                    f"(attach stream), docker CLI {r[2] / 1024:.1f} MiB"
                    for name, r in pipe_rss.items()) + ".",
        f"Runs: {args.runs} pairs for start-up, {args.reps} for each 1 GB row "
        "and each proxy row; "
        f"{time.time() - began:.0f} s in all.",
        "",
        "![ratios](results.svg)",
    ] + mcp_lines + [
        "",
    ]
    with open(os.path.join(ROOT, "bench", "results.md"), "w") as f:
        f.write("\n".join(lines))
    svg(rows, os.path.join(ROOT, "bench", "results.svg"))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
