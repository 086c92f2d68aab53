#!/usr/bin/env python3
"""sandbox against `docker run`, measured in one run on one machine.

Each row times sandbox and the docker CLI given the same image, mount and
hardening, alternating the two pair by pair so drift on a shared machine
hits both alike. Medians, and the ratio sandbox/docker (below 1: sandbox is
faster). Writes bench/results.md and bench/results.svg.

    python3 bench/bench.py [--runs 30] [--reps 3] [--quick]

Standard library only. Needs a running engine (`make engine`) and builds its
own image from the host's static busybox: nothing is pulled.
"""

import argparse
import datetime
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
SANDBOX = os.path.join(ROOT, "target", "release", "sandbox")
IMAGE = "sandbox-bench/busybox:1"
LABEL = "dev.sandbox.bench=1"
GB = 1_000_000_000


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build(workspace):
    sh("cargo", "build", "--release", "--locked", "--quiet", cwd=ROOT)
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy("/usr/bin/busybox", os.path.join(ctx, "busybox"))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write('FROM scratch\nCOPY busybox /bin/busybox\n'
                    'RUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\n')
        sh("docker", "build", "-q", "-t", IMAGE, ctx, stdout=subprocess.DEVNULL,
           env={**os.environ, "DOCKER_BUILDKIT": "0"})


def sandbox_cmd(*args, warm=False):
    cmd = [SANDBOX, "run", "--image", IMAGE, "--pull", "never", "--no-cache"]
    return cmd + (["--warm"] if warm else []) + list(args)


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


def timed(cmd, stdin=subprocess.DEVNULL, cwd=None):
    """Wall seconds and peak RSS (KiB) of one run, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss


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


def wait_warm(workspace, timeout=30):
    """Until this workspace's next warm container is up."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(
            ["docker", "ps", "-q", "--filter", "label=dev.sandbox.warm",
             "--filter", f"label=dev.sandbox.workspace={workspace}",
             "--filter", "status=running", "--filter", "name=sandbox-warm-"],
            capture_output=True, text=True).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise SystemExit("no warm container came up")


def stream_out(cmd, cwd):
    """Seconds to read 1 GB from cmd's stdout, checking the count."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=cwd)
    total = 0
    while chunk := proc.stdout.read(1 << 20):
        total += len(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if total != GB or os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stdout: {total} bytes, status {status}: {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss


def stream_in(cmd, cwd):
    """Seconds to push 1 GB into cmd's stdin, which counts it (wc -c)."""
    block = b"\0" * (1 << 20)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=cwd)

    def feed():
        sent = 0
        while sent < GB:
            n = min(len(block), GB - sent)
            proc.stdin.write(block[:n])
            sent += n
        proc.stdin.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    out = proc.stdout.read()
    feeder.join()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if out.strip() != str(GB).encode() or os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stdin: counted {out!r}, status {status}: {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss


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

    a, b = pairs(args.reps,
                 lambda: stream_out(sandbox_cmd("head", "-c", str(GB), "/dev/zero"), workspace),
                 lambda: stream_out(docker_cmd(workspace, "head", "-c", str(GB), "/dev/zero"),
                                    workspace))
    row("1 GB through stdout", [x[0] for x in a], [x[0] for x in b])
    rss_out = (max(x[1] for x in a), max(x[1] for x in b))
    notes.append(f"stdout: sandbox {GB / statistics.median([x[0] for x in a]) / 1e6:.0f} MB/s, "
                 f"docker {GB / statistics.median([x[0] for x in b]) / 1e6:.0f} MB/s")

    a, b = pairs(args.reps,
                 lambda: stream_in(sandbox_cmd("wc", "-c"), workspace),
                 lambda: stream_in(docker_cmd(workspace, "wc", "-c", stdin=True), workspace))
    row("1 GB through stdin", [x[0] for x in a], [x[0] for x in b])
    notes.append(f"stdin: sandbox {GB / statistics.median([x[0] for x in a]) / 1e6:.0f} MB/s, "
                 f"docker {GB / statistics.median([x[0] for x in b]) / 1e6:.0f} MB/s")

    for n in ([16] if args.quick else [16, 64]):
        sb = batch([sandbox_cmd("true")] * n, workspace)
        dk = batch([docker_cmd(workspace, "true")] * n, workspace)
        row(f"{n} runs at once", [sb], [dk])
        if left_behind(workspace):
            raise SystemExit(f"containers left after {n} runs at once")

    a, b = pairs(args.runs * 2, run([SANDBOX, "--version"]), run(["docker", "--version"]))
    row("`--version` start-up", [x[0] for x in a], [x[0] for x in b])

    # The warm container still waiting for this workspace, and nothing else.
    ours = subprocess.run(["docker", "ps", "-aq", "--filter",
                           f"label=dev.sandbox.workspace={workspace}"],
                          capture_output=True, text=True).stdout.split()
    if ours:
        sh("docker", "rm", "-f", *ours, stdout=subprocess.DEVNULL)
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
    lines += [
        "",
        f"Start-up latency p10/p90: sandbox {pct(rows[0][1], .1):.0f}/{pct(rows[0][1], .9):.0f} ms, "
        f"docker {pct(rows[0][2], .1):.0f}/{pct(rows[0][2], .9):.0f} ms; "
        f"warm {pct(warm, .1):.0f}/{pct(warm, .9):.0f} ms.",
        "Throughput: " + "; ".join(notes) + ".",
        f"Peak RSS of the client process: `true` sandbox {rss_run[0] / 1024:.1f} MiB, "
        f"docker CLI {rss_run[1] / 1024:.1f} MiB; 1 GB stdout sandbox "
        f"{rss_out[0] / 1024:.1f} MiB, docker CLI {rss_out[1] / 1024:.1f} MiB.",
        f"Runs: {args.runs} pairs for start-up, {args.reps} for each 1 GB row; "
        f"{time.time() - began:.0f} s in all.",
        "",
        "![ratios](results.svg)",
        "",
    ]
    with open(os.path.join(ROOT, "bench", "results.md"), "w") as f:
        f.write("\n".join(lines))
    svg(rows, os.path.join(ROOT, "bench", "results.svg"))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
