"""packman against its peers, in one run: python-tuf's ngclient, tough and sigstore-tuf.

    .venv/bin/python benches/peer_bench.py [--targets 100000,1000000] [--reps 5] [--many 100]
                                           [--styles succinct,prefixes] [--markdown FILE]

For each target count N, two PyPI-shaped repositories are built with the real binary
(`packman repo init --bins 16384 --bin-style succinct|prefixes`, then `packman repo add --raw
--prefix packages/` in batches of --batch files: N real small files, packages/projectNNNNNNN-1.0.tar.gz)
and each is served by `packman serve` on 127.0.0.1. Then, as whole processes (perf_counter
around subprocess.run), interleaved round by round, median of --reps rounds after one untimed
warm-up round (which also checks every client saved the right bytes):

  cold   an empty metadata directory: start from root v1, refresh, download one target;
  warm   the same metadata directory, nothing changed: refresh and download the same target
         again (into an empty directory, so it is fetched and verified again);
  many   an empty metadata directory, --many targets (spread over the bins) in one process.

Clients (each is given the root file, the metadata URL and the targets URL):
  packman       `packman download --root R --metadata-url U --metadata-dir M --dest D T...`
  python-tuf    benches/ngclient_cli.py (ngclient; --root bootstraps from R in the same process)
  tough         tests/adapters/tough (tough 0.24 from crates.io)
  sigstore-tuf  tests/adapters/sigstore-tuf (sigstore-tuf 0.15 from crates.io)
The adapters are the interop test's (tests/interop/test_bin_style.py); they are built here
the same way, into target/adapters (incremental: a second or so once built). They keep no
metadata between runs (every run starts from the root file), so they have no warm case. Neither
reads TAP 15 succinct bins: on the succinct repository they print "n/a (no TAP 15)" (each run is
still made once and must fail as the interop test says it does).

Repository generation, one sample each (a repository of N is not rebuilt --reps times):
  packman CLI   `repo init` + the batched `repo add --raw` of N real files, per bin style
                (hashing and copying each file; creating the files is not timed);
  packman-bench `packman-bench build-1m DIR --targets N` (N synthetic entries, succinct);
  python-tuf    publisher_bench.py's python-tuf build (the same N synthetic entries through
                the Metadata API, succinct, then os.sync()), up to --python-build-max targets.
The last two do the same work (benches/publisher_bench.py); the CLI row is the real command.

Binaries come from $PACKMAN_BIN_DIR (default <repo>/target/release):
`cargo build --release -p packman -p packman-bench`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))

import publisher_bench  # noqa: E402  - the python-tuf build, measured subprocesses

BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
PACKMAN = BIN_DIR / "packman"
PACKMAN_BENCH = BIN_DIR / "packman-bench"
NGCLIENT_CLI = Path(__file__).resolve().parent / "ngclient_cli.py"
ADAPTERS = REPO_ROOT / "tests" / "adapters"
ADAPTER_TARGET = REPO_ROOT / "target" / "adapters"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("PACKMAN_")}
CLIENTS = ("packman", "python-tuf", "tough", "sigstore-tuf")
# Not run by default: python-tuf with every write fsynced, file and directory (ngclient_cli.py
# --fsync), as packman's are; the like-for-like peer where durable writes dominate.
FSYNC = "python-tuf+fsync"
NO_TAP15 = "n/a (no TAP 15)"
RUN_TIMEOUT = 1800


def content(i: int) -> bytes:
    """Target i's bytes: small (30-300 B) and distinct."""
    return f"project {i} release 1.0\n".encode() * (1 + i % 12)


def target_name(i: int) -> str:
    return f"packages/project{i:07d}-1.0.tar.gz"


def packman(*args, timeout: float = RUN_TIMEOUT) -> str:
    cmd = [os.fspath(PACKMAN), *map(os.fspath, args)]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=ENV)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return p.stdout


def build_adapters() -> dict[str, Path]:
    """As tests/interop/test_bin_style.py builds them: each its own Cargo project and lock file."""
    env = dict(os.environ, CARGO_TARGET_DIR=os.fspath(ADAPTER_TARGET))
    out = {}
    for name in ("tough", "sigstore-tuf"):
        p = subprocess.run(["cargo", "build", "--release", "--locked", "--quiet",
                            "--manifest-path", os.fspath(ADAPTERS / name / "Cargo.toml")],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3000, env=env)
        if p.returncode != 0:
            sys.exit(f"building the {name} adapter failed:\n{p.stderr}")
        out[name] = ADAPTER_TARGET / "release" / f"{name}-adapter"
    return out


class LoadSampler(threading.Thread):
    """The 1-minute load average every 5 s while the benchmark runs (the machine is shared)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self.stop.wait(5)

    def summary(self) -> str:
        s = self.samples or [os.getloadavg()[0]]
        return f"min {min(s):.1f}, median {statistics.median(s):.1f}, max {max(s):.1f}"


# ---------------------------------------------------------------------------------------
# Repositories


class Served:
    """A repository of n targets built with `packman repo init` + batched `repo add --raw`,
    served by `packman serve` on 127.0.0.1."""

    def __init__(self, base: Path, n: int, style: str, batch: int):
        self.dir = base / f"{style}-{n}"
        self.style, self.n = style, n
        src = base / f"src-{style}-{n}"
        t = time.perf_counter()
        packman("repo", "init", self.dir, "--bins", "16384", "--bin-style", style)
        timed = time.perf_counter() - t
        for start in range(0, n, batch):
            src.mkdir()
            names = []
            for i in range(start, min(n, start + batch)):
                f = target_name(i).rsplit("/", 1)[1]
                (src / f).write_bytes(content(i))
                names.append(f)
            # A list file, not argv: a batch of 250,000 names is beyond ARG_MAX.
            (base / "batch.txt").write_text("".join(f"{name}\n" for name in names))
            t = time.perf_counter()
            p = subprocess.run([os.fspath(PACKMAN), "repo", "add", os.fspath(self.dir.resolve()), "--raw",
                                "--prefix", "packages/", "--files-from", base / "batch.txt"], cwd=src,
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
                               timeout=RUN_TIMEOUT)
            timed += time.perf_counter() - t
            if p.returncode != 0:
                sys.exit(f"repo add failed ({p.returncode}):\n{p.stderr}")
            shutil.rmtree(src)  # the repository keeps its own copies (bounds the disk used at 1M)
            print(f"  [{style} {n:,}] added {min(n, start + batch):,} targets", file=sys.stderr, flush=True)
        self.generation_s = timed
        self.root = self.dir / "metadata" / "1.root.json"
        self.targets_json = max((self.dir / "metadata").glob("*.targets.json"), key=lambda p: p.stat().st_mtime)
        self.proc = subprocess.Popen([os.fspath(PACKMAN), "serve", os.fspath(self.dir), "--listen", "127.0.0.1:0",
                                      "--access-log", "off"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True, env=ENV)
        first = self.proc.stdout.readline()
        if " on http://" not in first:
            sys.exit(f"packman serve did not start: {first!r}")
        self.url = first.split(" on ", 1)[1].strip().rstrip("/")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


# ---------------------------------------------------------------------------------------
# Clients


def client_cmd(client: str, s: Served, md: Path, out: Path, targets: list[str], adapters: dict[str, Path],
               cold: bool) -> list[str]:
    murl, turl = f"{s.url}/metadata/", f"{s.url}/targets/"
    if client == "packman":
        cmd = [os.fspath(PACKMAN), "download", "--metadata-url", murl, "--metadata-dir", os.fspath(md),
               "--dest", os.fspath(out), "-q"]
        return cmd + (["--root", os.fspath(s.root)] if cold else []) + targets
    if client.startswith("python-tuf"):
        cmd = [sys.executable, os.fspath(NGCLIENT_CLI), *(["--fsync"] if client == FSYNC else []),
               "--metadata-dir", os.fspath(md), "--metadata-url", murl,
               "--target-base-url", turl, "--target-dir", os.fspath(out)]
        cmd += ["--root", os.fspath(s.root)] if cold else []
        for t in targets:
            cmd += ["--target-name", t]
        return cmd + ["download"]
    return [os.fspath(adapters[client]), murl, turl, os.fspath(s.root), os.fspath(out), *targets]


def saved_path(client: str, out: Path, target: str) -> Path:
    if client == "packman":
        return out / target.rsplit("/", 1)[1]
    if client.startswith("python-tuf"):
        return out / quote(target, "")  # ngclient's default file name
    return out / target


class TimedOut(Exception):
    pass


def run_client(client: str, cmd: list[str], expect_fail: bool, timeout: float) -> float | None:
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=timeout, env=ENV)
    except subprocess.TimeoutExpired:
        raise TimedOut from None
    wall = time.perf_counter() - t
    if expect_fail:
        # tough: "missing field `roles`" (exit 1); sigstore-tuf: target not found (exit 2).
        ok = (client == "tough" and p.returncode == 1 and "missing field `roles`" in p.stderr) or \
             (client == "sigstore-tuf" and p.returncode == 2 and "not found" in p.stderr)
        if not ok:
            sys.exit(f"{client} on succinct bins: expected its known failure, got {p.returncode}:\n{p.stderr}")
        return None
    if p.returncode != 0:
        sys.exit(f"{client} failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return wall


# ---------------------------------------------------------------------------------------
# Driver


def fmt_ms(x: float) -> str:
    return f"{x * 1000:,.0f}" if x >= 0.1 else f"{x * 1000:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="100000", help="comma-separated target counts (default 100000)")
    ap.add_argument("--styles", default="succinct,prefixes", help="bin styles (default succinct,prefixes)")
    ap.add_argument("--reps", type=int, default=5, help="timed rounds after one warm-up round (default 5)")
    ap.add_argument("--many", type=int, default=100, help="targets in the many-target case (default 100)")
    ap.add_argument("--batch", type=int, default=50_000, help="files per `repo add` (default 50000)")
    ap.add_argument("--python-build-max", type=int, default=1_000_000,
                    help="largest N python-tuf's build is timed at (default 1000000)")
    ap.add_argument("--peer-timeout", type=float, default=120,
                    help="seconds a peer's run may take; one that takes longer is killed, reported as "
                         "'> T s', and not run again for that case (default 120; packman: 1800)")
    ap.add_argument("--clients", default=",".join(CLIENTS),
                    help=f"default {','.join(CLIENTS)}; also {FSYNC} (python-tuf making its writes durable)")
    ap.add_argument("--workdir", type=Path, help="where repositories go (default: a temp dir)")
    ap.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = ap.parse_args()
    counts = [int(x) for x in args.targets.split(",")]
    styles = args.styles.split(",")
    clients = [c for c in args.clients.split(",") if c]
    for b in (PACKMAN, PACKMAN_BENCH):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} not found: cargo build --release -p packman -p packman-bench (or set PACKMAN_BIN_DIR)")
    started = time.perf_counter()
    adapters = build_adapters() if {"tough", "sigstore-tuf"} & set(clients) else {}
    load = LoadSampler()
    load.start()

    import tuf  # noqa: PLC0415 - version only

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    machine = (f"{os.cpu_count()} CPUs ({cpu}), {platform.platform()}, Python {platform.python_version()}, "
               f"python-tuf {tuf.__version__}")
    lines: list[str] = []

    def out(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    gen_rows: list[str] = []
    client_rows: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="peer-bench-", dir=args.workdir))
    try:
        for n in counts:
            base = tmp / f"n{n}"
            base.mkdir()
            # ---- generation ----------------------------------------------------------
            print(f"[{n:,}] packman-bench build-1m ...", file=sys.stderr, flush=True)
            pb_wall, _, _ = publisher_bench.run_measured(
                [os.fspath(PACKMAN_BENCH), "build-1m", os.fspath(base / "pb"), "--targets", str(n), "--bins", "16384"])
            py_wall = None
            if n <= args.python_build_max:
                print(f"[{n:,}] python-tuf build ...", file=sys.stderr, flush=True)
                py_wall, _, _ = publisher_bench.run_measured(
                    [sys.executable, os.fspath(publisher_bench.THIS), "_py-build", os.fspath(base / "py"), str(n), "14"])
            served = {}
            try:
                for style in styles:
                    print(f"[{n:,}] packman repo init + add --raw, {style} ...", file=sys.stderr, flush=True)
                    served[style] = Served(base, n, style, args.batch)
                cli = ", ".join(f"{st} {served[st].generation_s:.1f} s" for st in styles)
                py_cell = f"{py_wall:.1f} s ({py_wall / pb_wall:.1f}x)" if py_wall else \
                    f"not run (N > --python-build-max {args.python_build_max:,})"
                gen_rows.append(f"| {n:,} | {cli} | {pb_wall:.1f} s | {py_cell} |")

                # ---- clients -------------------------------------------------------------
                step = max(1, n // args.many)
                many = [target_name(i) for i in range(step // 2, n, step)][: args.many]
                one = target_name(n // 2 + 7)
                results: dict[tuple[str, str, str], list[float]] = {}
                na: set[tuple[str, str]] = set()
                timed_out: set[tuple[str, str, str]] = set()
                for rnd in range(args.reps + 1):
                    for style in styles:
                        s = served[style]
                        for client in clients:
                            expect_fail = style == "succinct" and client in ("tough", "sigstore-tuf")
                            if expect_fail and rnd > 0:
                                continue  # checked once in the warm-up round
                            w = base / "runs" / f"{style}-{client}-{rnd}"
                            md = w / "md"
                            cases = [("cold", [one], True, w / "cold")]
                            if client in ("packman", "python-tuf", FSYNC):
                                cases.append(("warm", [one], False, w / "warm"))
                            cases.append(("many", many, True, w / "many"))
                            for case, targets, cold, dest in cases:
                                if (style, case, client) in timed_out:
                                    continue
                                m = md if case != "many" else w / "md-many"
                                limit = RUN_TIMEOUT if client == "packman" else args.peer_timeout
                                try:
                                    wall = run_client(client, client_cmd(client, s, m, dest, targets, adapters, cold),
                                                      expect_fail, limit)
                                except TimedOut:
                                    print(f"  {client} {style} {case}: over {limit:.0f} s, killed; not run again",
                                          file=sys.stderr, flush=True)
                                    timed_out.add((style, case, client))
                                    continue
                                if wall is None:
                                    na.add((style, client))
                                    break
                                if rnd == 0:  # verify what each client saved, once
                                    for t in targets:
                                        i = int(t.rsplit("project", 1)[1].split("-")[0])
                                        got = saved_path(client, dest, t).read_bytes()
                                        assert got == content(i), f"{client} saved wrong bytes for {t}"
                                else:
                                    results.setdefault((style, case, client), []).append(wall)
                    print(f"  [{n:,}] round {rnd}/{args.reps} done{' (warm-up, checked)' if rnd == 0 else ''}",
                          file=sys.stderr, flush=True)
                for style in styles:
                    tj = served[style].targets_json.stat().st_size
                    for case in ("cold", "warm", "many"):
                        ref = results.get((style, case, "packman"))
                        cells = []
                        for client in clients:
                            xs = results.get((style, case, client))
                            if (style, client) in na:
                                cells.append(NO_TAP15)
                            elif (style, case, client) in timed_out:
                                bound = f"; > {args.peer_timeout / statistics.median(ref):,.0f}x" if ref else ""
                                cells.append(f"> {args.peer_timeout * 1000:,.0f} (killed{bound})")
                            elif not xs:
                                cells.append("n/a (keeps no metadata)" if case == "warm" else "n/a")
                            else:
                                med = statistics.median(xs)
                                ratio = "" if client == "packman" or not ref else \
                                    f" ({med / statistics.median(ref):.1f}x)"
                                cells.append(f"{fmt_ms(med)}{ratio}")
                        label = {"cold": "cold: root + 1 target", "warm": "warm: nothing changed, 1 target",
                                 "many": f"many: root + {len(many)} targets"}[case]
                        client_rows.append(f"| {n:,} | {style} ({tj / 1024:,.0f} KiB targets.json) | {label} | "
                                           + " | ".join(cells) + " |")
            finally:
                for s in served.values():
                    s.close()
    except BaseException:
        print(f"left {tmp} (remove it by hand)", file=sys.stderr)
        raise
    finally:
        load.stop.set()

    out(f"Machine: {machine}; load average (1 min) during the run: {load.summary()}.")
    out(f"Run: {time.perf_counter() - started:.0f} s in all; client figures are medians of {args.reps} "
        "interleaved rounds (after a checked warm-up round), whole processes, in ms; "
        "(Nx) = peer / packman.")
    out()
    out("Clients (16,384 hashed bins, served by `packman serve` on 127.0.0.1):")
    out()
    out("| targets | bins | case | " + " | ".join(clients) + " |")
    out("|---|---|---|" + "---|" * len(clients))
    for r in client_rows:
        out(r)
    out()
    out("Repository generation (one sample each):")
    out()
    out("| targets | packman CLI: init + add --raw of real files | packman-bench build-1m (synthetic, succinct) "
        "| python-tuf Metadata API (same synthetic entries, succinct; ratio to packman-bench) |")
    out("|---|---|---|---|")
    for r in gen_rows:
        out(r)
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
    # Deleting is left to the end (untimed): on this machine's busy disk unlinking a
    # 16384-bin repository took up to a minute.
    print(f"removing {tmp} ...", file=sys.stderr, flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
