"""packman proxy vs packman serve: pip and uv installing the same tree of wheels, same run.

    python3 benches/proxy_bench.py [--reps 3] [--packages 50] [--page-requests 300]
                                   [--origin-rtt-ms MS] [--cold-bins] [--uv PATH] [--workdir DIR]
                                   [--keep]

Builds 50 tiny real wheels (bench-pkg-00 .. bench-pkg-49, each a module, METADATA with
Requires-Dist and a RECORD), where package i requires packages 2i+1 and 2i+2 (a binary
tree: installing bench-pkg-00 installs all 50), publishes them with `packman repo init` and
`packman repo add`, serves the repository with `packman serve`, and trusts it in a fresh
PACKMAN_HOME with `packman trust add --root metadata/1.root.json`. Then, interleaved, each
--reps times, pip (`python -m pip install --target T --no-cache-dir`) and uv (`uv pip
install --target T --no-cache --no-config`) install bench-pkg-00 into a fresh target
directory with only one index:

  direct      packman serve's simple index (http://ADDR/simple/)
  proxy cold  `packman proxy` started with an empty cache (PACKMAN_HOME/cache removed;
              the trusted metadata stays, the proxy's start-up refresh is not timed)
  proxy warm  the same proxy again, its cache holding every page and wheel

With --cold-bins, "proxy cold" also starts without the delegated bins' metadata (each
file of PACKMAN_HOME/ring/bench/metadata but root, timestamp, snapshot and targets removed):
a first install, where every page and wheel first needs its bin fetched. Without it, every
cold run after the first finds the bins the earlier runs saved.

With --origin-rtt-ms MS, the origin is reached through a relay on 127.0.0.1 that delays
every chunk by MS/2 in each direction (latency only, no bandwidth limit): the index is then as
far away as a nearby mirror, for direct installs and for the proxy's own fetches alike.

Reported: medians and the ratios proxy / direct (goals: cold within 1.2x of direct, warm
faster than direct); the proxy's added latency per page request (--page-requests GETs of
/simple/bench-pkg-00/ over one keep-alive connection, direct and through the warm proxy,
median per request); and the proxy's peak RSS (VmHWM from /proc/PID/status, the largest
over all proxy processes started).

The packman binary comes from $PACKMAN_BIN_DIR (default <repo>/target/release:
`cargo build --release -p packman`). uv comes from --uv, $UV or PATH; without it only pip
runs. pip is the running interpreter's (`python3 -m pip`). Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import base64
import hashlib
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"


def name_of(i: int) -> str:
    return f"bench-pkg-{i:02d}"


def build_wheel(out: Path, i: int, n: int) -> Path:
    """A pure-Python wheel for package i, requiring its children in the tree."""
    dist = name_of(i).replace("-", "_")
    version = "1.0"
    di = f"{dist}-{version}.dist-info"
    deps = [name_of(c) for c in (2 * i + 1, 2 * i + 2) if c < n]
    meta = f"Metadata-Version: 2.1\nName: {name_of(i)}\nVersion: {version}\nSummary: benchmark package {i}\n"
    meta += "".join(f"Requires-Dist: {d}\n" for d in deps) + "\n"
    files = {
        f"{dist}/__init__.py": f"VALUE = {i}\n".encode() + b"# padding\n" * 50,
        f"{di}/METADATA": meta.encode(),
        f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: proxy_bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    record += f"{di}/RECORD,,\n"
    files[f"{di}/RECORD"] = record.encode()
    path = out / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, data in files.items():
            z.writestr(zipfile.ZipInfo(p, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return path


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}")
    return r


class Server:
    """A packman process that prints its address on its first line (serve, proxy)."""

    def __init__(self, cmd: list[str], env: dict, pattern: str):
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(pattern, line)
        if not m:
            self.proc.kill()
            sys.exit(f"{cmd[1]} printed {line!r}, not its address\n{self.proc.stderr.read()}")
        self.addr = m.group(1)
        self.peak_kib = 0

    def index(self) -> str:
        return f"http://{self.addr}/simple/"

    def hwm_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.peak_kib = max(self.peak_kib, self.hwm_kib())
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def clean_env(base: dict) -> dict:
    env = {k: v for k, v in base.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def install(tool: str, uv: str | None, index: str, target: Path, env: dict) -> float:
    if target.exists():
        shutil.rmtree(target)
    if tool == "pip":
        cmd = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
               "--no-input", "--target", str(target), "--index-url", index, name_of(0)]
    else:
        cmd = [uv, "pip", "install", "--no-cache", "--no-config", "--python", sys.executable,
               "--target", str(target), "--index-url", index, name_of(0)]
    t = time.perf_counter()
    run(cmd, env=env)
    elapsed = time.perf_counter() - t
    got = sorted(p.name for p in target.glob("bench_pkg_*") if p.suffix != ".dist-info" and p.is_dir())
    if len(got) != N_PACKAGES:
        sys.exit(f"{tool} from {index} installed {len(got)} packages, not {N_PACKAGES}")
    return elapsed


def page_latency(addr: str, path: str, n: int) -> float:
    """Median seconds per GET of `path` over one keep-alive connection."""
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        c.request("GET", path, headers={"Accept": JSON_ACCEPT})
        r = c.getresponse()
        body = r.read()
        times.append(time.perf_counter() - t)
        if r.status != 200 or not body:
            sys.exit(f"GET {path} from {addr}: {r.status}")
    c.close()
    return statistics.median(times)


N_PACKAGES = 50


class Relay:
    """A TCP relay on 127.0.0.1 to `upstream` (host:port) that delays every chunk by `delay`
    seconds in each direction: network latency without a bandwidth limit."""

    def __init__(self, upstream: str, delay: float):
        self.host, port = upstream.rsplit(":", 1)
        self.port, self.delay = int(port), delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
            self.addr = "127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait()

    async def pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        q: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await q.get()
                wait = due - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
            try:
                dst.write_eof()
            except (OSError, RuntimeError):
                pass

        task = asyncio.create_task(deliver())
        try:
            while True:
                data = await src.read(1 << 16)
                await q.put((self.loop.time() + self.delay, data))
                if not data:
                    break
        except OSError:
            await q.put((0.0, b""))
        await task

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(self.host, self.port)
            await asyncio.gather(self.pump(reader, uw), self.pump(ur, writer))
        # Cancelled: the relay is stopping (asyncio would print the cancellation otherwise).
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.thread.join(timeout=5)


def main() -> None:
    global N_PACKAGES
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--packages", type=int, default=50)
    ap.add_argument("--page-requests", type=int, default=300)
    ap.add_argument("--origin-rtt-ms", type=float, default=0.0,
                    help="reach the origin through a relay adding this round-trip time")
    ap.add_argument("--cold-bins", action="store_true",
                    help="proxy cold also without the delegated bins' metadata (a first install)")
    ap.add_argument("--uv", default=os.environ.get("UV") or shutil.which("uv"))
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    N_PACKAGES = a.packages
    packman = BIN_DIR / "packman"
    if not packman.is_file():
        sys.exit(f"{packman} not found: cargo build --release -p packman (or set PACKMAN_BIN_DIR)")
    tools = ["pip"] + (["uv"] if a.uv else [])
    if not a.uv:
        print("uv not found (--uv, $UV or PATH): pip only", file=sys.stderr)

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    servers: list[Server] = []
    relay = None
    try:
        wheels = work / "wheels"
        wheels.mkdir(exist_ok=True)
        paths = [build_wheel(wheels, i, N_PACKAGES) for i in range(N_PACKAGES)]
        repo = work / "repo"
        shutil.rmtree(repo, ignore_errors=True)
        base_env = clean_env(os.environ)
        run([str(packman), "repo", "init", str(repo)], env=base_env)
        run([str(packman), "repo", "add", str(repo), *map(str, paths)], env=base_env)
        serve = Server([str(packman), "serve", str(repo), "--listen", "127.0.0.1:0", "--access-log", "off"],
                       base_env, r"(127\.0\.0\.1:\d+)")
        servers.append(serve)
        origin = serve.addr
        if a.origin_rtt_ms > 0:
            relay = Relay(serve.addr, a.origin_rtt_ms / 2000)
            origin = relay.addr
        home = work / "home"
        shutil.rmtree(home, ignore_errors=True)
        env = dict(base_env, PACKMAN_HOME=str(home))
        run([str(packman), "trust", "add", "bench", f"http://{origin}/",
             "--root", str(repo / "metadata" / "1.root.json")], env=env)

        proxy_peak = 0

        def start_proxy(cold: bool) -> Server:
            if cold:
                shutil.rmtree(home / "cache", ignore_errors=True)
                if a.cold_bins:
                    keep = {"root.json", "timestamp.json", "snapshot.json", "targets.json"}
                    for f in (home / "ring" / "bench" / "metadata").glob("*.json"):
                        if f.name not in keep:
                            f.unlink()
            p = Server([str(packman), "proxy", "--listen", "127.0.0.1:0"], env, r"http://([\d.:]+)/simple/")
            servers.append(p)
            return p

        times: dict[tuple[str, str], list[float]] = {}
        target = work / "target"
        modes = ["direct", "proxy cold", "proxy warm"]
        print(f"{N_PACKAGES} wheels, {a.reps} reps, tools: {', '.join(tools)}, origin RTT {a.origin_rtt_ms:g} ms"
              f"{', cold bins' if a.cold_bins else ''}; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        for rep in range(a.reps):
            for tool in tools:
                # Rotate which mode goes first, so drift in machine load spreads over all.
                order = modes[rep % 3:] + modes[:rep % 3]
                proxy = None
                for mode in order:
                    if mode == "direct":
                        t = install(tool, a.uv, f"http://{origin}/simple/", target, env)
                    else:
                        if mode == "proxy cold" or proxy is None:
                            if proxy is not None:
                                proxy.stop()
                                proxy_peak = max(proxy_peak, proxy.peak_kib)
                            proxy = start_proxy(cold=True)
                            if mode == "proxy warm":
                                install(tool, a.uv, proxy.index(), target, env)  # fill the cache
                        t = install(tool, a.uv, proxy.index(), target, env)
                    times.setdefault((tool, mode), []).append(t)
                    print(f"  rep {rep + 1} {tool:<3} {mode:<10} {t:6.2f} s", flush=True)
                if proxy is not None:
                    proxy.stop()
                    proxy_peak = max(proxy_peak, proxy.peak_kib)

        # Added latency per page request: the same page, direct and through a warm proxy.
        proxy = start_proxy(cold=False)
        page = f"/simple/{name_of(0)}/"
        page_latency(proxy.addr, page, 5)  # warm: refreshed, page cached
        direct_s = page_latency(origin, page, a.page_requests)
        proxy_s = page_latency(proxy.addr, page, a.page_requests)
        proxy.stop()
        proxy_peak = max(proxy_peak, proxy.peak_kib)

        print()
        print(f"| installer | direct (s) | proxy cold (s) | proxy warm (s) | cold / direct | warm / direct |")
        print("|---|---|---|---|---|---|")
        verdicts = []
        for tool in tools:
            d, c, w = (statistics.median(times[(tool, m)]) for m in modes)
            print(f"| {tool} | {d:.2f} | {c:.2f} | {w:.2f} | {c / d:.2f}x | {w / d:.2f}x |")
            verdicts.append(f"{tool}: cold within 1.2x of direct: {'met' if c / d <= 1.2 else 'NOT met'}; "
                            f"warm faster than direct: {'met' if w < d else 'NOT met'}")
        print()
        print(f"page request ({a.page_requests} x GET {page}, keep-alive, median): direct {direct_s * 1e6:.0f} us, "
              f"through the proxy {proxy_s * 1e6:.0f} us, added {(proxy_s - direct_s) * 1e6:.0f} us")
        print(f"proxy peak RSS (VmHWM, largest of {len(servers) - 1} proxy processes): {proxy_peak / 1024:.1f} MiB")
        for v in verdicts:
            print(v)
        print(f"load {os.getloadavg()[0]:.2f}")
    finally:
        if relay is not None:
            relay.stop()
        for s in servers:
            if s.proc.poll() is None:
                s.stop()
        if not a.keep and not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
