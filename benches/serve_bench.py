"""packman serve vs nginx: HTTP load on the same repository directory, same run.

    .venv/bin/python benches/serve_bench.py [--duration 10] [--repeat 3] [--quick]
                                            [--wrk-threads 1,2] [--wrk-timeout 2] [--baseline BIN_DIR]
                                            [--with-logging] [--workdir DIR] [--keep]

Builds a repository with the packman CLI (`packman repo init`, then `packman repo add --raw
--prefix files/` of a 10 MiB random file and two small ones) and serves that one directory
with both servers at once, each on its own 127.0.0.1 port:
  packman  `packman serve DIR --listen 127.0.0.1:0 --access-log off`
  nginx    foreground (daemon off), master + 2 workers, a generated config in the temp dir
           (access_log off, sendfile, tcp_nopush, keepalive_requests 100000; root DIR)
Both are checked to return the files' exact bytes, then loaded with wrk
(`wrk -tT -cN -dSs --timeout 2s --latency URL`), the servers alternating, each measurement
repeated --repeat times, medians reported. Every case runs with each of --wrk-threads
(default 1,2: -t2 makes wrk and the server compete for both cores, as on a busy host).
--baseline BIN_DIR adds BIN_DIR/packman as a third server in the same alternation.
  metadata/timestamp.json        (~0.5 KB)  50 connections
  metadata/N.snapshot.json       (~8 KB)    50 connections
  metadata/timestamp.json        (~0.5 KB)  1000 connections; RSS sampled every 0.2 s
  targets/files/<sha256>.big.bin (10 MiB)   10 connections
  [--with-logging: timestamp.json, 50 connections, both servers writing an access log file]
Per case: requests/s, p99 latency, transfer rate, socket errors and non-2xx responses, and
the server's CPU time per request (utime+stime from /proc, all its processes). Any socket
error (connect, read, write, timeout) or non-2xx answer from any server fails the run: the
tables are printed, then FAILED with the runs that had them, exit status 1. Memory: the
servers' RSS (VmRSS; nginx: master + workers) idle, before, during (peak) and after the
1000-connection runs, and at the end.

Goals for packman: >= 0.8x nginx's requests/s; RSS flat under 1000 concurrent connections
(peak during those runs no more than --flat-mib, default 16 MiB, above the RSS just before).

nginx and wrk come from Debian; when missing they are installed with apt-get (as root),
otherwise the script stops. The packman binary comes from $PACKMAN_BIN_DIR (default
<repo>/target/release): `cargo build --release -p packman`. Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import pwd
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.2

# ---------------------------------------------------------------------------------------
# Tools and limits


def find_tool(name: str, package: str) -> str:
    """The path of `name` (also looked up in /usr/sbin, which is not on every PATH); when
    missing, `apt-get install -y package` as root, else exit with instructions."""
    def which() -> str | None:
        return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")

    path = which()
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"{name} not found: install it (Debian: apt-get install -y {package})")
    print(f"{name} not found: apt-get install -y {package} ...", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL)
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"apt-get install {package} failed: install {name} by hand")
    path = which()
    if not path:
        sys.exit(f"{name} still not found after apt-get install {package}")
    return path


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit, for this process and the servers and wrk it
    starts (they inherit it), so 1000 connections fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as e:
        print(f"warning: cannot raise RLIMIT_NOFILE from {soft} to {target}: {e}", file=sys.stderr)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# Processes: RSS and CPU time from /proc


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(x) for x in (task / "children").read_text().split()]
        return out
    except OSError:
        pass
    # No /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN off): scan every process's ppid.
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError):
                pass
    return out


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += children(p)
    return pids


def rss_kib(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


def cpu_s(pids: list[int]) -> float:
    ticks = 0
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            f = stat[stat.rindex(")") + 2:].split()
            ticks += int(f[11]) + int(f[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            pass
    return ticks / CLK_TCK


# ---------------------------------------------------------------------------------------
# The two servers


class Server:
    label = ""
    url = ""
    proc: subprocess.Popen

    def pids(self) -> list[int]:
        return tree(self.proc.pid)

    def rss_kib(self) -> int:
        return rss_kib(self.pids())

    def cpu_s(self) -> float:
        return cpu_s(self.pids())

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            sys.exit(f"{self.label} exited ({self.proc.returncode}) during the benchmark\n{self.log_tail()}")

    def log_tail(self) -> str:
        return ""

    def stop(self) -> str:
        """SIGTERM, wait; returns a note when the exit was not clean."""
        if self.proc.poll() is not None:
            return f"{self.label} had already exited ({self.proc.returncode})"
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"{self.label} did not exit within 15 s of SIGTERM (killed)"
        return "" if rc == 0 else f"{self.label} exited with {rc} on SIGTERM"


class PackmanServer(Server):
    def __init__(self, packman: Path, root: Path, tmp: Path, access_log: str, label: str = "packman"):
        self.label = label
        self.stderr_path = tmp / f"{label}.stderr"
        cmd = [os.fspath(packman), "serve", os.fspath(root), "--listen", "127.0.0.1:0", "--access-log", access_log]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        line = b""
        deadline = time.monotonic() + 30
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self.proc.kill()
                sys.exit(f"packman serve printed no address within 30 s\n{self.log_tail()}")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                sys.exit(f"packman serve exited ({self.proc.wait()}) before printing its address\n{self.log_tail()}")
            line += chunk
        first = line.split(b"\n", 1)[0].decode()
        m = re.match(r"serving .* on (http://\S+?)/?$", first)
        if not m:
            self.proc.kill()
            sys.exit(f"unexpected first line from packman serve: {first!r}")
        self.url = m.group(1)
        # Keep its stdout drained (it prints a second line, and nothing after that).
        threading.Thread(target=lambda: self.proc.stdout.read(), daemon=True).start()

    def log_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


NGINX_CONF = """\
{user}daemon off;
master_process on;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;

events {{
    worker_connections 4096;
}}

http {{
    access_log {access_log};
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    {open_file_cache}
    default_type application/octet-stream;
    types {{
        application/json json;
    }}
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    server {{
        listen 127.0.0.1:{port};
        root {root};
        # What packman serve serves (keys/ is not published).
        location /metadata/ {{ }}
        location /targets/ {{ }}
        location / {{ return 404; }}
    }}
}}
"""


class NginxServer(Server):
    def __init__(self, nginx: str, root: Path, tmp: Path, access_log: str, workers: int,
                 open_file_cache: bool, label: str = "nginx"):
        self.label = label
        self.tmp = tmp
        tmp.mkdir(parents=True)
        port = free_port()
        # As root, nginx's workers would switch to "nobody"; run them as this script's user,
        # like packman serve (and able to read the temp dir).
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(user=user, workers=workers, tmp=tmp, port=port, root=root, access_log=access_log,
                                 open_file_cache="open_file_cache max=1000 inactive=60s;" if open_file_cache else "")
        (tmp / "nginx.conf").write_text(conf)
        cmd = [nginx, "-p", os.fspath(tmp), "-c", os.fspath(tmp / "nginx.conf"), "-e", os.fspath(tmp / "error.log")]
        with open(tmp / "nginx.stderr", "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"nginx exited ({self.proc.returncode}) at start-up\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.proc.kill()
                    sys.exit(f"nginx did not listen on port {port} within 30 s\n{self.log_tail()}")
                time.sleep(0.05)
        # The master listens before its workers are forked: wait for them.
        while len(self.pids()) < 1 + workers and time.monotonic() < deadline:
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"

    def log_tail(self) -> str:
        out = ""
        for f in ("nginx.stderr", "error.log"):
            try:
                out += (self.tmp / f).read_text(errors="replace")[-2000:]
            except OSError:
                pass
        return out


def fetch(url: str) -> tuple[int, bytes]:
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request("GET", u.path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# wrk


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
UNITS_B = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def parse_wrk(out: str) -> dict:
    def grab(pattern: str) -> re.Match:
        m = re.search(pattern, out, re.M)
        if not m:
            raise ValueError(f"cannot find {pattern!r} in wrk output:\n{out}")
        return m

    r = {"rps": float(grab(r"^Requests/sec:\s+([\d.]+)").group(1))}
    m = grab(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$")
    r["p99_ms"] = float(m.group(1)) * UNITS_MS[m.group(2)]
    m = grab(r"^Transfer/sec:\s+([\d.]+)([KMGT]?B)\s*$")
    r["mib_s"] = float(m.group(1)) * UNITS_B[m.group(2)] / 1024 ** 2
    r["requests"] = int(grab(r"^\s+(\d+) requests in ").group(1))
    # wrk prints these lines only when the counts are not zero.
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    r["socket_detail"] = m.group(0) if m else ""
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    r["errors"] = r["socket_errors"] + r["non2xx"]
    return r


def run_wrk(wrk: str, server: Server, path: str, conns: int, secs: int, threads: int, timeout: int) -> dict:
    """One wrk run against server; also the server's RSS (sampled every 0.2 s: peak) and
    the CPU time it used."""
    server.check_alive()
    cmd = [wrk, f"-t{threads}", f"-c{conns}", f"-d{secs}s", f"--timeout={timeout}s", "--latency", server.url + path]
    cpu0 = server.cpu_s()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = server.rss_kib()
    deadline = time.monotonic() + secs + 60
    while p.poll() is None:
        if time.monotonic() > deadline:
            p.kill()
            sys.exit(f"wrk did not finish: {' '.join(cmd)}")
        time.sleep(SAMPLE_S)
        peak = max(peak, server.rss_kib())
    out, err = p.communicate()
    cpu = server.cpu_s() - cpu0
    if p.returncode != 0:
        sys.exit(f"wrk failed ({p.returncode}): {' '.join(cmd)}\n{out}\n{err}")
    r = parse_wrk(out)
    r["peak_rss_kib"] = peak
    r["cpu_us_per_req"] = cpu * 1e6 / r["requests"] if r["requests"] else float("nan")
    server.check_alive()
    return r


# ---------------------------------------------------------------------------------------
# Repository


def build_repository(packman: Path, base: Path, big_bytes: int) -> Path:
    root = base / "repo"
    files = base / "files"
    files.mkdir()
    big = files / "big.bin"
    with open(big, "wb") as f:
        left = big_bytes
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    (files / "readme.txt").write_text("serve benchmark\n" * 8)
    (files / "small.json").write_text('{"hello": "world"}\n')
    for cmd in ([packman, "repo", "init", root],
                [packman, "repo", "add", root, "--raw", "--prefix", "files/", big, files / "readme.txt", files / "small.json"]):
        p = subprocess.run([os.fspath(c) for c in cmd], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stdout}\n{p.stderr}")
    return root


def newest(metadata: Path, role: str) -> Path:
    versions = [(int(p.name.split(".", 1)[0]), p) for p in metadata.glob(f"*.{role}.json")
                if p.name.split(".", 1)[0].isdigit()]
    if not versions:
        sys.exit(f"no N.{role}.json in {metadata}")
    return max(versions)[1]


def target_file(root: Path, name: str) -> Path:
    """targets/files/NAME, or with consistent snapshots targets/files/<sha256>.NAME."""
    d = root / "targets" / "files"
    if (d / name).is_file():
        return d / name
    hits = sorted(d.glob(f"*.{name}"))
    if not hits:
        sys.exit(f"{name} not found under {d}")
    return hits[0]


# ---------------------------------------------------------------------------------------
# Report


def fmt_size(n: int) -> str:
    if n >= 1024 ** 2:
        return f"{n / 1024 ** 2:.0f} MiB" if n % 1024 ** 2 == 0 else f"{n / 1e6:.1f} MB"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def fmt_num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description="packman serve vs nginx load benchmark (wrk)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 10; 2 with --quick)")
    ap.add_argument("--repeat", type=int, help="runs per case and server, median reported (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke run: --duration 2 --repeat 1")
    ap.add_argument("--conns", type=int, default=50, help="connections for the small-file cases (default 50)")
    ap.add_argument("--many-conns", type=int, default=1000, help="connections for the memory case (default 1000)")
    ap.add_argument("--big-conns", type=int, default=10, help="connections for the 10 MiB case (default 10)")
    ap.add_argument("--big-mib", type=int, default=10, help="size of the large target, MiB (default 10)")
    ap.add_argument("--wrk-threads", default="1,2",
                    help="wrk -t values, comma-separated: every case runs with each (default 1,2: -t1, then -t2, "
                         "where wrk competes with the server for both cores, as on a busy host)")
    ap.add_argument("--wrk-timeout", type=int, default=2,
                    help="wrk --timeout in seconds (default 2, wrk's own): a response slower than this counts as "
                         "a socket error (timeout), which fails the run")
    ap.add_argument("--baseline", type=Path, metavar="BIN_DIR",
                    help="also serve with BIN_DIR/packman (e.g. a build of the previous main), a third server in "
                         "the same alternation: its ratio to nginx is measured in the same run as packman's")
    ap.add_argument("--nginx-workers", type=int, default=2, help="nginx worker_processes (default 2)")
    ap.add_argument("--nginx-open-file-cache", action="store_true", help="add open_file_cache max=1000 to nginx")
    ap.add_argument("--with-logging", action="store_true",
                    help="one more case: both servers writing an access log file (a second pair of servers)")
    ap.add_argument("--flat-mib", type=float, default=16,
                    help="'flat' memory: peak RSS during the many-connection runs at most this much above "
                         "the RSS just before them (default 16 MiB)")
    ap.add_argument("--workdir", type=Path, help="where the repository and server files go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (repository, configs, logs)")
    args = ap.parse_args()
    duration = args.duration or (2 if args.quick else 10)
    try:
        threads = [int(t) for t in args.wrk_threads.split(",")]
        assert threads and all(t >= 1 for t in threads)
    except (ValueError, AssertionError):
        sys.exit(f"--wrk-threads {args.wrk_threads!r}: want positive integers separated by commas, e.g. 1,2")
    repeat = args.repeat or (1 if args.quick else 3)

    packman = BIN_DIR / "packman"
    if not os.access(packman, os.X_OK):
        sys.exit(f"{packman} not found: cargo build --release -p packman (or set PACKMAN_BIN_DIR)")
    nginx = find_tool("nginx", "nginx-light")
    wrk = find_tool("wrk", "wrk")
    nofile = raise_nofile()
    if nofile < args.many_conns + 100:
        print(f"warning: RLIMIT_NOFILE is {nofile}: {args.many_conns} connections may fail", file=sys.stderr)

    nginx_v = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", "")
    wrk_v = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n", 1)[0].split(" [")[0]
    load0 = os.getloadavg()

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-", dir=args.workdir))
    exit_code = 0
    servers: list[Server] = []
    notes: list[str] = []
    try:
        print("building the repository ...", file=sys.stderr, flush=True)
        root = build_repository(packman, tmp, args.big_mib * 1024 * 1024)
        md = root / "metadata"
        ts = md / "timestamp.json"
        snap = newest(md, "snapshot")
        big = target_file(root, "big.bin")
        rel = lambda p: "/" + p.relative_to(root).as_posix()  # noqa: E731

        pm = PackmanServer(packman, root, tmp, "off")
        servers.append(pm)
        ng = NginxServer(nginx, root, tmp / "nginx", "off", args.nginx_workers, args.nginx_open_file_cache)
        servers.append(ng)
        pair = [pm, ng]
        if args.baseline:
            bl = PackmanServer(args.baseline / "packman", root, tmp, "off", "baseline")
            servers.append(bl)
            pair.append(bl)
        log_pair: list[Server] = []
        if args.with_logging:
            log_pair = [PackmanServer(packman, root, tmp, os.fspath(tmp / "packman-access.log"), "packman+log"),
                        NginxServer(nginx, root, tmp / "nginx-log", os.fspath(tmp / "nginx-access.log"),
                                    args.nginx_workers, args.nginx_open_file_cache, "nginx+log")]
            servers += log_pair

        # Both must serve the files' exact bytes (this also fills packman's cache and the page cache).
        for s in servers:
            for f in (ts, snap, big):
                for _ in range(2):
                    status, body = fetch(s.url + rel(f))
                    if status != 200 or body != f.read_bytes():
                        sys.exit(f"{s.label}: GET {rel(f)} gave {status}, {len(body)} bytes (want 200, {f.stat().st_size})")

        print(f"repository: packman repo init + repo add --raw --prefix files/ (a {args.big_mib} MiB random file, "
              f"two small ones): {root}")
        print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, load average {load0[0]:.2f} at start")
        print(f"packman: {packman} serve --access-log off (pid {pm.proc.pid}) at {pm.url}")
        if args.baseline:
            print(f"baseline: {args.baseline / 'packman'} serve --access-log off (pid {bl.proc.pid}) at {bl.url}")
        print(f"nginx {nginx_v}: master + {args.nginx_workers} workers, access_log off, sendfile, tcp_nopush"
              f"{', open_file_cache' if args.nginx_open_file_cache else ''} (pid {ng.proc.pid}) at {ng.url}")
        print(f"load: {wrk_v} {' and '.join(f'-t{t}' for t in threads)} --timeout {args.wrk_timeout}s --latency, {repeat} x {duration} s per case and server, "
              f"alternating; RLIMIT_NOFILE {nofile}")
        print(flush=True)

        # (name, file, connections, servers, memory case); every case with each wrk -t value.
        base_cases = [
            (f"{ts.name} ({fmt_size(ts.stat().st_size)})", ts, args.conns, pair, False),
            (f"{snap.name} ({fmt_size(snap.stat().st_size)})", snap, args.conns, pair, False),
            (f"{ts.name} ({fmt_size(ts.stat().st_size)})", ts, args.many_conns, pair, True),
            (f"{big.name.split('.', 1)[1]} ({fmt_size(big.stat().st_size)})", big, args.big_conns, pair, False),
        ]
        if log_pair:
            base_cases.append((f"{ts.name}, access log on", ts, args.conns, log_pair, False))
        # Memory is followed through the first -t value's many-connection runs only.
        cases = [(t, name, f, conns, srv, memory_case and ti == 0)
                 for ti, t in enumerate(threads) for name, f, conns, srv, memory_case in base_cases]

        mem: dict[str, dict[str, int]] = {s.label: {} for s in pair}
        time.sleep(0.5)
        for s in pair:
            mem[s.label]["idle, after start-up and the checks (files now in packman's cache)"] = s.rss_kib()

        results: list[tuple[int, str, int, dict[str, list[dict]], list[Server]]] = []
        for ci, (t, name, f, conns, srv, memory_case) in enumerate(cases):
            if memory_case:
                for s in srv:
                    mem[s.label][f"before the -c{conns} runs"] = s.rss_kib()
            runs: dict[str, list[dict]] = {s.label: [] for s in srv}
            for rep in range(repeat):
                order = srv if (rep + ci) % 2 == 0 else srv[::-1]
                for s in order:
                    r = run_wrk(wrk, s, rel(f), conns, duration, t, args.wrk_timeout)
                    runs[s.label].append(r)
                    print(f"  -t{t} {name} -c{conns} run {rep + 1}/{repeat} {s.label}: {r['rps']:,.0f} req/s, "
                          f"p99 {r['p99_ms']:.2f} ms, {r['mib_s']:,.1f} MiB/s, {r['socket_errors']} socket errors, "
                          f"{r['non2xx']} non-2xx, peak RSS {r['peak_rss_kib'] / 1024:.1f} MiB",
                          file=sys.stderr, flush=True)
            if memory_case:
                for s in srv:
                    mem[s.label][f"peak during the -c{conns} runs (every {SAMPLE_S} s)"] = max(
                        r["peak_rss_kib"] for r in runs[s.label])
                time.sleep(1)
                for s in srv:
                    mem[s.label][f"after the -c{conns} runs (1 s later)"] = s.rss_kib()
            results.append((t, name, conns, runs, srv))
        for s in pair:
            mem[s.label]["end (after all cases)"] = s.rss_kib()
        load1 = os.getloadavg()

        # ---- report ---------------------------------------------------------------------
        print(f"Throughput: median of {repeat} run(s) of {duration} s per server; ratio = packman / nginx "
              f"requests/s (goal >= 0.8); spread = min-max ratio of the runs paired in order")
        print()
        head = ["wrk", "case", "conns", "packman req/s", "nginx req/s", "ratio", "spread", "packman p99 ms",
                "nginx p99 ms", "packman MiB/s", "nginx MiB/s", "CPU us/req pm / ng", "sock err pm / ng",
                "non-2xx pm / ng", "goal"]
        rows = []
        verdicts = []
        failures: list[str] = []
        for t, name, conns, runs, srv in results:
            a, b = runs[srv[0].label], runs[srv[1].label]
            med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
            ratio = med(a, "rps") / med(b, "rps") if med(b, "rps") else float("nan")
            pairs = [x["rps"] / y["rps"] for x, y in zip(a, b) if y["rps"]]
            ok = ratio >= 0.8
            if srv is pair:  # the access-log row is for information
                verdicts.append(ok)
            rows.append([f"-t{t}", name, str(conns), fmt_num(med(a, "rps")), fmt_num(med(b, "rps")), f"{ratio:.2f}x",
                         f"{min(pairs):.2f}-{max(pairs):.2f}" if pairs else "-",
                         f"{med(a, 'p99_ms'):.2f}", f"{med(b, 'p99_ms'):.2f}",
                         fmt_num(med(a, "mib_s")), fmt_num(med(b, "mib_s")),
                         f"{med(a, 'cpu_us_per_req'):.0f} / {med(b, 'cpu_us_per_req'):.0f}",
                         f"{sum(r['socket_errors'] for r in a)} / {sum(r['socket_errors'] for r in b)}",
                         f"{sum(r['non2xx'] for r in a)} / {sum(r['non2xx'] for r in b)}",
                         ("met" if ok else "MISSED") if srv is pair else "(info)"])
            if "baseline" not in runs and args.baseline:
                rows[-1][-1:-1] = ["-", "-"]
            if "baseline" in runs:
                c = runs["baseline"]
                rows[-1][-1:-1] = [f"{med(c, 'rps') / med(b, 'rps'):.2f}x", f"{med(c, 'cpu_us_per_req'):.0f}"]
            for s in srv:
                for i, r in enumerate(runs[s.label]):
                    if r["errors"]:
                        failures.append(f"{s.label}, -t{t} {name} -c{conns}, run {i + 1}: "
                                        f"{r['non2xx']} non-2xx responses, {r['socket_errors']} socket errors"
                                        f"{' (' + r['socket_detail'] + ')' if r['socket_detail'] else ''}")
        if args.baseline:
            head[-1:-1] = ["baseline ratio", "baseline CPU us/req"]
        print_table(head, rows)
        print()

        labels = list(mem["packman"].keys())
        print(f"Memory: RSS in MiB (VmRSS; nginx: master + {args.nginx_workers} workers)")
        print()
        mrows = [[k, f"{mem['packman'][k] / 1024:.1f}", f"{mem['nginx'][k] / 1024:.1f}"] for k in labels]
        before = next((k for k in labels if k.startswith("before")), None)
        peak = next((k for k in labels if k.startswith("peak")), None)
        flat = None
        if before and peak:
            g = {s: (mem[s][peak] - mem[s][before]) / 1024 for s in ("packman", "nginx")}
            mrows.append([f"growth under {args.many_conns} connections (peak - before)",
                          f"{g['packman']:+.1f}", f"{g['nginx']:+.1f}"])
            flat = g["packman"] <= args.flat_mib
        print_table(["", "packman", "nginx"], mrows)
        print()
        print(f"goal: packman >= 0.8x nginx's requests/s: {'met' if all(verdicts) else 'MISSED'} "
              f"({sum(verdicts)} of {len(verdicts)} cases without access logs)")
        if flat is not None:
            print(f"goal: packman's memory flat under {args.many_conns} concurrent connections "
                  f"(growth <= {args.flat_mib:g} MiB): {'met' if flat else 'MISSED'}")
        print(f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end; wrk runs on the same "
              f"{os.cpu_count()} CPUs as the servers (see benches/README.md)")
        if failures:
            print()
            print(f"FAILED: {len(failures)} wrk run(s) had error answers or socket errors; a server that "
                  "drops or refuses requests is not measured fairly by its requests/s:")
            for f in failures:
                print(f"  {f}")
            exit_code = 1
    finally:
        for s in servers:
            note = s.stop()
            if note:
                notes.append(note)
        for n in notes:
            print(f"note: {n}")
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(exit_code)


def print_table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            out.append(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    print(line(head))
    print("|" + "|".join(("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1)) for i, w in enumerate(widths)) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
