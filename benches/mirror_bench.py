"""packman mirror vs a plain parallel copy, tuftool and sha256sum, on loopback, one run.

    .venv/bin/python benches/mirror_bench.py [--files 50000] [--size 1G] [--jobs 8]
                                             [--reps 3] [--nochange-reps 20] [--bins 256]
                                             [--bin-style succinct|prefixes]
                                             [--tuftool PATH | --no-tuftool]
                                             [--workdir DIR] [--keep]

1. A repository of --files random files totalling about --size bytes (each between 0.5x and
   1.5x the mean), published with `packman repo add --raw --prefix files/NN/` in batches of
   5000, --bins hashed bins delegated as --bin-style (`packman repo init --bin-style`: TAP 15
   `succinct`, the default, or classic PEP 458 `prefixes`), served by nginx (Debian's /usr/sbin/nginx, foreground, master +
   2 workers, access_log off, sendfile; a config generated in the work dir) on 127.0.0.1.
2. **Full sync**, --reps times, interleaved (which goes first alternates), each into a fresh directory:
     packman   `packman mirror sync URL DEST --root 1.root.json --jobs J --state STATE`
     copy      `xargs -P J -n 256 curl -sS --fail --remote-name-all` over the URLs of the
               same files (the metadata the current snapshot names and every hashed
               target): a plain parallel copy, no verification, no fsync
     tuftool   `tuftool clone` (crates.io; --tuftool PATH, or installed once with
               `cargo install tuftool --locked --root WORKDIR/tuftool-install`; skipped with
               a note when that fails), --bin-style prefixes only: tough, its library, does
               not read succinct bins ("missing field `roles`"). tough fetches and stores a
               consistent-snapshot target as `HASH.dir/name` where packman publishes
               `dir/HASH.name`, so nginx maps /tough-targets/HASH.dir/name to that file (one
               regex rewrite per request, tuftool's only); tuftool still checks each target's
               length and sha256. Its clone is counted and must hold every target.
3. **No-change sync**: `packman mirror sync URL DEST` against the synced mirror, nothing new
   upstream, --nochange-reps whole processes.
4. **verify**: `packman mirror verify DEST --root 1.root.json` against sha256sum over the
   same target files, one process (sha256sum's per-core throughput) and `xargs -P CORES`
   (all cores), after one untimed read of every file (page cache warm for all).

Each run is a whole process: wall time, and peak RSS from wait4's rusage (ru_maxrss: the
largest process of the tree, for xargs the largest curl or sha256sum). Medians; files/s and
MB/s (10^6 bytes) over the targets' bytes; ratios against the plain copy and sha256sum.
Goals (issue 15): full sync within 1.15x of the plain copy and ahead of tuftool; no-change
sync under 20 ms; verify at least 0.9x sha256sum's per-core throughput times the cores.

Binaries come from $PACKMAN_BIN_DIR (default <repo>/target/release): `cargo build --release
-p packman`. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
PACKMAN = BIN_DIR / "packman"
NGINX = "/usr/sbin/nginx"
BATCH = 5000


def parse_size(s: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip().upper().removesuffix("B").removesuffix("I")
    return int(float(s[:-1]) * units[s[-1]]) if s[-1] in units else int(s)


TIME = "/usr/bin/time"  # Debian's `time`: the peak RSS of a process forked from a small one


def run_rusage(cmd: list, cwd: Path | None = None, env=None) -> tuple[float, int, bytes]:
    """Runs cmd to completion: (wall seconds, peak RSS in KiB, stdout). The peak RSS is
    ru_maxrss of wait4, the largest process of the tree; read by /usr/bin/time when present,
    because a child forked from this Python process starts with Python's RSS as its peak
    (about 15 MiB). A failure stops the benchmark (a failed run's timing means nothing)."""
    argv = [os.fspath(c) for c in cmd]
    rss_file = None
    if os.access(TIME, os.X_OK):
        rss_file = tempfile.NamedTemporaryFile(prefix="rss-")
        argv = [TIME, "-f", "%M", "-o", rss_file.name, *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                if cwd is not None:
                    os.chdir(cwd)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
                os.execve(argv[0], argv, env or os.environ)
            finally:
                os._exit(127)
        _, status, ru = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise SystemExit(f"{' '.join(argv)} exited {code}\n{err.read().decode(errors='replace')[-3000:]}")
        rss = ru.ru_maxrss
        if rss_file is not None:
            rss = int(Path(rss_file.name).read_text().split()[-1])
            rss_file.close()
        return wall, rss, out.read()


# ---------------------------------------------------------------------------------------
# The repository and nginx


def generate(work: Path, files: int, size: int, bins: int, bin_style: str, seed: int) -> tuple[Path, int]:
    """The upstream repository; returns (its directory, bytes of targets)."""
    up = work / "upstream"
    src = work / "src"
    rng = random.Random(seed)
    mean = max(1, size // files)
    subprocess.run([PACKMAN, "repo", "init", up, "--bins", str(bins), "--bin-style", bin_style], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    total = 0
    t0 = time.perf_counter()
    for b in range(0, files, BATCH):
        d = src / f"{b // BATCH:02d}"
        d.mkdir(parents=True)
        names = []
        for i in range(b, min(files, b + BATCH)):
            n = rng.randint(max(1, mean // 2), max(1, mean * 3 // 2))
            p = d / f"f{i:06d}.bin"
            p.write_bytes(rng.randbytes(n))
            names.append(p)
            total += n
        subprocess.run([PACKMAN, "repo", "add", up, "--raw", "--prefix", f"files/{b // BATCH:02d}/", *names],
                       check=True, stdout=subprocess.DEVNULL)
        # The sources stay until the end: removing 50,000 files right before the first sync
        # would slow it (ext4's `recently_deleted`, below).
        print(f"  generated {min(files, b + BATCH)}/{files} files, {total / 1e6:.0f} MB, "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return up, total


NGINX_CONF = """\
{user}daemon off;
master_process on;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    types {{ application/json json; }}
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /metadata/ {{ }}
        location /targets/ {{ }}
        # tough's consistent-snapshot target name, HASH.dir/name, to the file dir/HASH.name
        location /tough-targets/ {{
            rewrite "^/tough-targets/([0-9a-f]{{64}})\\.(.+)/([^/]+)$" /targets/$2/$1.$3 break;
            return 404;
        }}
        location / {{ return 404; }}
    }}
}}
"""


def start_nginx(root: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    tmp.mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port, root=root))
    proc = subprocess.Popen([NGINX, "-p", tmp, "-c", tmp / "nginx.conf", "-e", tmp / "error.log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"nginx did not start: {(tmp / 'error.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)


def fetched_files(up: Path) -> tuple[list[str], list[str]]:
    """(metadata paths, hashed target paths) a full sync fetches: root, timestamp, the current
    snapshot and every role it names, and each target those roles list."""
    md = up / "metadata"
    ts = json.loads((md / "timestamp.json").read_bytes())["signed"]
    snap_v = ts["meta"]["snapshot.json"]["version"]
    meta = [f"metadata/1.root.json", "metadata/timestamp.json", f"metadata/{snap_v}.snapshot.json"]
    targets = []
    for name, m in json.loads((md / f"{snap_v}.snapshot.json").read_bytes())["signed"]["meta"].items():
        meta.append(f"metadata/{m['version']}.{name}")
        for path, info in json.loads((md / f"{m['version']}.{name}").read_bytes())["signed"].get(
                "targets", {}).items():
            d, _, base = path.rpartition("/")
            targets.append(f"targets/{d}/{info['hashes']['sha256']}.{base}")
    return meta, targets


# ---------------------------------------------------------------------------------------
# tuftool


def find_tuftool(args, work: Path) -> str | None:
    if args.no_tuftool:
        return None
    if args.bin_style != "prefixes":
        print("note: tuftool not measured: tough, its library, does not read TAP 15 succinct bins "
              "(\"missing field `roles`\"); --bin-style prefixes measures it", file=sys.stderr)
        return None
    if args.tuftool:
        return args.tuftool
    found = shutil.which("tuftool")
    if found:
        return found
    root = work / "tuftool-install"
    print("installing tuftool: cargo install tuftool --locked (several minutes) ...", file=sys.stderr, flush=True)
    p = subprocess.run(["cargo", "install", "tuftool", "--locked", "--root", root], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        print(f"note: tuftool not measured: cargo install tuftool failed:\n{p.stderr[-1500:]}", file=sys.stderr)
        return None
    return os.fspath(root / "bin" / "tuftool")


# ---------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=50000)
    ap.add_argument("--size", default="1G", help="total bytes of targets (K/M/G suffixes; default 1G)")
    ap.add_argument("--jobs", type=int, default=8, help="parallel downloads of sync, xargs -P of the copy")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--nochange-reps", type=int, default=20)
    ap.add_argument("--bins", type=int, default=256)
    ap.add_argument("--bin-style", choices=["succinct", "prefixes"], default="succinct",
                    help="packman repo init --bin-style; tuftool reads only prefixes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tuftool", help="a tuftool binary (default: on PATH, else cargo install)")
    ap.add_argument("--no-tuftool", action="store_true")
    ap.add_argument("--workdir", type=Path, help="default: a temp dir, removed at the end")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    if not os.access(PACKMAN, os.X_OK):
        sys.exit(f"missing {PACKMAN}: cargo build --release -p packman (or set PACKMAN_BIN_DIR)")
    if not os.access(NGINX, os.X_OK):
        sys.exit(f"missing {NGINX}: apt-get install nginx-light")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    nginx = None
    try:
        tuftool = find_tuftool(args, work)
        t0 = time.perf_counter()
        up, total = generate(work, args.files, parse_size(args.size), args.bins, args.bin_style, args.seed)
        print(f"repository: {args.files} files, {total / 1e6:.1f} MB, {args.bins} {args.bin_style} bins, generated in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        nginx, url = start_nginx(up, work / "nginx")
        meta, targets = fetched_files(up)
        assert len(targets) == args.files, (len(targets), args.files)
        urls = work / "urls.txt"
        urls.write_text("".join(f"{url}/{p}\n" for p in meta + targets))
        root = up / "metadata" / "1.root.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACKMAN_")}
        env["PACKMAN_HOME"] = os.fspath(work / "home")

        rows: dict[str, list[tuple[float, int]]] = {}

        def record(name: str, wall: float, rss: int) -> None:
            rows.setdefault(name, []).append((wall, rss))
            print(f"  {name}: {wall:.3f} s, {rss / 1024:.0f} MiB", file=sys.stderr, flush=True)

        def fresh(d: Path) -> Path:
            shutil.rmtree(d, ignore_errors=True)
            return d

        def settle() -> None:
            # Each run starts with nothing dirty: no run pays for the previous one's writes.
            os.sync()

        # Every run writes into a directory of its own, and nothing is removed until the
        # reps are over: ext4 (without a journal, as on this VM) skips inodes freed within
        # the last minute when it allocates new ones, and after a mass removal that scan was
        # the top of the kernel profile (`recently_deleted`), landing on whichever run came
        # next, by seconds (benches/README, mirror benchmark).
        for d in work.glob("run-*"):
            shutil.rmtree(d, ignore_errors=True)
        for rep in range(args.reps):
            run_dir = work / f"run-{rep}"
            mirror, state = run_dir / "mirror", run_dir / "state"

            def sync_run() -> None:
                settle()
                w, r, _ = run_rusage([PACKMAN, "mirror", "sync", url, mirror, "--root", root, "--jobs",
                                      str(args.jobs), "--state", state], env=env)
                record("full sync: packman", w, r)

            def copy_run() -> None:
                copy = run_dir / "copy"
                copy.mkdir(parents=True)
                settle()
                w, r, _ = run_rusage(["/bin/sh", "-c", f"xargs -P {args.jobs} -n 256 curl -sS --fail "
                                                       f"--remote-name-all < {urls}"], cwd=copy, env=env)
                record("full sync: xargs curl", w, r)
                # The like-for-like peer: the copy made durable, as packman's sync is before it
                # publishes (nothing else is dirty: settled before the copy).
                ws, _, _ = run_rusage(["/bin/sync"], env=env)
                record("full sync: xargs curl, then sync", w + ws, r)
                if len(os.listdir(copy)) != len(set(Path(p).name for p in meta + targets)):
                    sys.exit(f"the plain copy has {len(os.listdir(copy))} files")

            # Which goes first alternates, so neither always follows the other's writes.
            for run in (sync_run, copy_run) if rep % 2 == 0 else (copy_run, sync_run):
                run()
            if tuftool:
                tt = run_dir / "tuftool"
                settle()
                try:
                    w, r, _ = run_rusage([tuftool, "clone", "--root", root, "--metadata-url", f"{url}/metadata",
                                          "--targets-url", f"{url}/tough-targets", "--metadata-dir",
                                          tt / "metadata", "--targets-dir", tt / "targets"], env=env)
                    record("full sync: tuftool clone", w, r)
                except SystemExit as e:
                    print(f"note: tuftool clone failed, not measured: {e}", file=sys.stderr)
                    tuftool = None
                else:
                    # Every target, each at tough's HASH.dir/name (not timed).
                    got = sum(len(fs) for _, _, fs in os.walk(tt / "targets"))
                    if got != len(targets):
                        sys.exit(f"tuftool clone saved {got} targets of {len(targets)}")
        # The last rep's mirror is the one the runs below use; the other reps' directories
        # are removed only at the end, for the same reason (a removal of 200,000 files here
        # once made every no-change sync below 10 ms slower).
        mirror, last = work / "mirror", work / f"run-{args.reps - 1}"
        shutil.rmtree(mirror, ignore_errors=True)
        shutil.rmtree(work / "state", ignore_errors=True)
        os.rename(last / "mirror", mirror)
        os.rename(last / "state", work / "state")

        # The copies' 1 GB of unwritten pages would otherwise be written back during these
        # short runs (benches/README, mirror benchmark).
        settle()
        for _ in range(args.nochange_reps):
            w, r, _ = run_rusage(["/bin/true"], env=env)
            record("process start (/bin/true)", w, r)
            w, r, out = run_rusage([PACKMAN, "mirror", "sync", url, mirror, "--state", work / "state"], env=env)
            record("no-change sync", w, r)
        if b"nothing new upstream" not in out:
            sys.exit(f"the no-change sync fetched something:\n{out.decode()}")

        files = [mirror / t for t in targets]
        lst = work / "files.txt"
        lst.write_text("".join(f"{f}\n" for f in files))
        subprocess.run(["/bin/sh", "-c", f"xargs -n 1000 cat < {lst} > /dev/null"], check=True)  # warm
        for rep in range(args.reps):
            w, r, out = run_rusage([PACKMAN, "mirror", "verify", mirror, "--root", root, "--state", work / "state",
                                    "--json"], env=env)
            v = json.loads(out)
            record("verify: packman", w, r)
            w, r, _ = run_rusage(["/bin/sh", "-c", f"xargs -n 1000 sha256sum < {lst} > /dev/null"], env=env)
            record("verify: sha256sum, 1 process", w, r)
            w, r, _ = run_rusage(["/bin/sh", "-c", f"xargs -P {cores} -n 1000 sha256sum < {lst} > /dev/null"], env=env)
            record(f"verify: xargs -P {cores} sha256sum", w, r)
        print(f"verify report: {json.dumps({k: v[k] for k in v if not isinstance(v[k], list)})}", file=sys.stderr)

        med = {k: (statistics.median(w for w, _ in v), max(r for _, r in v)) for k, v in rows.items()}
        print()
        print(f"machine: {platform.node()}, {cores} cores ({platform.processor() or platform.machine()}), "
              f"Linux {platform.release()}; {args.files} files, {total / 1e6:.1f} MB of targets; "
              f"{args.bins} {args.bin_style} bins; jobs {args.jobs}; medians of {args.reps} "
              f"(no-change: {args.nochange_reps})")
        head = ["case", "median", "files/s", "MB/s", "peak RSS", "ratio"]
        out_rows = []
        base_copy = med["full sync: xargs curl"][0]
        base_sha = med["verify: sha256sum, 1 process"][0]
        for name, (w, r) in med.items():
            if name.startswith("full sync"):
                ratio = f"{w / base_copy:.2f}x the copy's time"
            elif name.startswith("verify"):
                ratio = f"{base_sha / w:.2f}x sha256sum's 1-core MB/s"
            elif name == "no-change sync":
                ratio = "goal < 20 ms"
            else:
                ratio = "what starting a process costs here"
            n = args.files if name.startswith(("full", "verify")) else 0
            out_rows.append([name, f"{w * 1000:.1f} ms" if w < 1 else f"{w:.2f} s",
                             f"{n / w:,.0f}" if n else "-", f"{total / 1e6 / w:,.0f}" if n else "-",
                             f"{r / 1024:.0f} MiB", ratio])
        widths = [max(len(x) for x in col) for col in zip(head, *out_rows)]
        print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in out_rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        print()
        sync_ratio = med["full sync: packman"][0] / base_copy
        # This VM's speed drifts between minutes (its memory is handed back to the host and
        # faulted in again, benches/README): each rep's pair ran back to back.
        pairs = zip(rows["full sync: packman"], rows["full sync: xargs curl"])
        print("full sync, each rep (packman / the copy): " + ", ".join(f"{p[0] / c[0]:.2f}x" for p, c in pairs))
        durable = med["full sync: xargs curl, then sync"][0]
        print(f"full sync: {sync_ratio:.2f}x the plain copy's time (goal <= 1.15x), "
              f"{med['full sync: packman'][0] / durable:.2f}x the copy's made durable"
              + (f"; {med['full sync: tuftool clone'][0] / med['full sync: packman'][0]:.2f}x faster than tuftool"
                 if "full sync: tuftool clone" in med else "; tuftool not measured"))
        print(f"no-change sync: {med['no-change sync'][0] * 1000:.1f} ms (goal < 20 ms)")
        goal = 0.9 * (total / base_sha) * cores
        got = total / med["verify: packman"][0]
        print(f"verify: {got / 1e6:.0f} MB/s; goal 0.9 x {total / base_sha / 1e6:.0f} MB/s x {cores} cores = "
              f"{goal / 1e6:.0f} MB/s: {got / goal:.2f}x the goal")
    finally:
        if nginx:
            nginx.terminate()
            nginx.wait()
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            # --workdir: the repository, its nginx and the last mirror stay for reruns.
            for d in [work / "src", *work.glob("run-*")]:
                shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
