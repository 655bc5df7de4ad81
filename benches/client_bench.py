"""packman vs python-tuf: whole-process client timings on a PyPI-shaped repository.

    .venv/bin/python benches/client_bench.py [--packman-reps 10] [--python-reps 5]
                                             [--targets 5000] [--bit-length 14]

Builds, with python-tuf's Metadata API, a repository shaped like PEP 458's plan for PyPI:
top-level targets delegating everything to 2**14 = 16384 succinct hashed bins ("bins-0000"
... "bins-3fff", TAP 15), a few thousand small targets named
packages/<project>/<project>-1.0.tar.gz spread over those bins, consistent snapshots. It is
served by a threaded http.server on 127.0.0.1 (TCP_NODELAY, HTTP/1.1 keep-alive).

Then it times, as whole processes (time.perf_counter around subprocess.run):
  cold  init + refresh + download of one target, each step a process, in a fresh metadata
        directory and target directory every run;
  warm  refresh in a metadata directory that is already up to date (nothing changed);
for packman (the packman-conformance binary) and for python-tuf (benches/ngclient_cli.py, a
small ngclient-based client with the same command line), runs interleaved. python-tuf is
run twice: stock (its metadata writes are atomic renames without fsync) and with --fsync
(every write fsynced with its directory, as packman does); the ratio that compares like
with like is the fsync one.

Binaries come from $PACKMAN_BIN_DIR (default <repo>/target/release).
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
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.fspath(REPO_ROOT / "tests" / "interop"))

from tufrepo import RepoBuilder, RepoServer  # noqa: E402

BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
NGCLIENT_CLI = Path(__file__).resolve().parent / "ngclient_cli.py"


def build_repository(path: Path, n_targets: int, bit_length: int) -> tuple[RepoBuilder, list[str]]:
    repo = RepoBuilder(path)
    repo.enable_bins(bit_length, name_prefix="bins")
    names = []
    for i in range(n_targets):
        project = f"project{i:05d}"
        name = f"packages/{project}/{project}-1.0.tar.gz"
        # Small, distinct contents: 256 bytes to ~4 KiB.
        seed = hashlib.sha256(name.encode()).digest()
        repo.add_target(name, seed * (8 + i % 120))
        names.append(name)
    repo.publish()
    return repo, names


class Client:
    def __init__(self, label: str, argv0: list[str], extra: list[str] | None = None):
        self.label = label
        self.argv0 = argv0
        self.extra = extra or []

    def cmd(self, metadata_dir: Path, *rest) -> list[str]:
        return self.argv0 + self.extra + ["--metadata-dir", os.fspath(metadata_dir)] + [os.fspath(r) for r in rest]


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    elapsed = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        sys.exit(f"benchmark command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode(errors='replace')}")
    return elapsed


def cold_run(c: Client, work: Path, server: RepoServer, root: Path, target: str) -> dict[str, float]:
    md, td = work / "metadata", work / "targets"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    url = f"{server.url}/metadata/"
    t = {
        "init": timed(c.cmd(md, "init", root)),
        "refresh": timed(c.cmd(md, "--metadata-url", url, "refresh")),
        "download": timed(c.cmd(md, "--metadata-url", url, "--target-name", target,
                                "--target-base-url", f"{server.url}/targets/", "--target-dir", td, "download")),
    }
    t["total"] = sum(t.values())
    return t


def warm_run(c: Client, md: Path, server: RepoServer) -> float:
    return timed(c.cmd(md, "--metadata-url", f"{server.url}/metadata/", "refresh"))


def main() -> None:
    ap = argparse.ArgumentParser(description="packman vs python-tuf client benchmark")
    ap.add_argument("--packman-reps", type=int, default=10, help="repetitions for packman (default 10)")
    ap.add_argument("--python-reps", type=int, default=5, help="repetitions for each python-tuf mode (default 5)")
    ap.add_argument("--targets", type=int, default=5000, help="number of targets (default 5000)")
    ap.add_argument("--bit-length", type=int, default=14, help="succinct hashed bins bit length (default 14)")
    ap.add_argument("--no-stock-python", action="store_true", help="skip python-tuf without fsync")
    ap.add_argument("--workdir", type=Path, help="where to build the repository and client state (default: a temp dir)")
    ap.add_argument("--baseline", type=Path, metavar="BIN_DIR",
                    help="also time the packman-conformance in BIN_DIR (e.g. a build of the previous main), "
                         "interleaved with the others, with as many runs as packman")
    ap.add_argument("--no-python", action="store_true", help="skip python-tuf (with --baseline: packman A/B only)")
    args = ap.parse_args()

    conformance = BIN_DIR / "packman-conformance"
    if not os.access(conformance, os.X_OK):
        sys.exit(f"{conformance} not found: cargo build --release -p packman-conformance (or set PACKMAN_BIN_DIR)")

    tmp = tempfile.mkdtemp(prefix="packman-bench-", dir=args.workdir)
    try:
        base = Path(tmp)
        t0 = time.perf_counter()
        repo, names = build_repository(base / "repo", args.targets, args.bit_length)
        build_s = time.perf_counter() - t0
        target = names[len(names) // 2]
        snapshot_size = (repo.metadata_dir / "1.snapshot.json").stat().st_size
        bin_file = repo.metadata_dir / f"1.{repo.bin_for(target)}.json"

        clients = [Client("packman", [os.fspath(conformance)])]
        if args.baseline:
            clients.append(Client("packman baseline", [os.fspath(args.baseline / "packman-conformance")]))
        py = [sys.executable, os.fspath(NGCLIENT_CLI)]
        if not args.no_python and not args.no_stock_python:
            clients.append(Client("python-tuf", py))
        if not args.no_python:
            clients.append(Client("python-tuf +fsync", py, ["--fsync"]))
        reps = {c.label: (args.packman_reps if c.label.startswith("packman") else args.python_reps) for c in clients}

        cold: dict[str, list[dict[str, float]]] = {c.label: [] for c in clients}
        warm: dict[str, list[float]] = {c.label: [] for c in clients}
        requests: dict[tuple[str, str], int] = {}

        print(f"repository: {args.targets} targets in {2 ** args.bit_length} succinct hashed bins "
              f"({len(repo.bin_targets)} non-empty), consistent snapshots; built in {build_s:.1f} s")
        print(f"  snapshot.json {snapshot_size / 1024:.0f} KiB, {bin_file.name} {bin_file.stat().st_size} B; "
              f"downloading {target}")
        print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
        print(f"packman: {conformance}")

        import tuf  # noqa: PLC0415 - only for its version

        print(f"python-tuf {tuf.__version__}: {NGCLIENT_CLI.name} via {sys.executable}")

        with RepoServer(repo.path) as server:
            # One untimed warm-up per client (page cache, .pyc files), which also checks it
            # works and records how many requests each scenario makes.
            for c in clients:
                w = base / "warmup" / c.label.replace(" ", "_").replace("+", "")
                server.clear()
                cold_run(c, w, server, repo.root_path, target)
                requests[(c.label, "cold")] = len(server.paths())
                got = (w / "targets").iterdir()
                assert any(f.read_bytes() == repo.target_data[target] for f in got), c.label
                server.clear()
                warm_run(c, w / "metadata", server)
                requests[(c.label, "warm")] = len(server.paths())

            for i in range(max(reps.values())):
                for c in clients:
                    if i >= reps[c.label]:
                        continue
                    w = base / "runs" / c.label.replace(" ", "_").replace("+", "")
                    cold[c.label].append(cold_run(c, w, server, repo.root_path, target))
                    warm[c.label].append(warm_run(c, w / "metadata", server))
                print(f"  round {i + 1}/{max(reps.values())} done", file=sys.stderr, flush=True)

        # Python's own start-up + `import tuf.ngclient`, for scale.
        imp = [timed([sys.executable, "-c", "import tuf.ngclient"]) for _ in range(max(args.python_reps, 1))]

        def row(scenario: str, label: str, xs: list[float], ref: list[float] | None, reqs: str) -> str:
            med, mn = statistics.median(xs), min(xs)
            ratio = ""
            if ref is not None:
                d = 2 if label.startswith("packman") else 1
                ratio = f"{med / statistics.median(ref):6.{d}f}x  {mn / min(ref):6.{d}f}x"
            return f"{scenario:<34} {label:<18} {len(xs):>4} {med:>10.1f} {mn:>9.1f} {reqs:>8}  {ratio}"

        head = f"{'scenario':<34} {'client':<18} {'runs':>4} {'median ms':>10} {'min ms':>9} {'requests':>8}  ratio vs packman (median, min)"
        print()
        print(head)
        print("-" * len(head))
        ref_cold = [r["total"] for r in cold["packman"]]
        ref_warm = warm["packman"]
        for c in clients:
            xs = [r["total"] for r in cold[c.label]]
            print(row("cold: init+refresh+download", c.label, xs, None if c.label == "packman" else ref_cold,
                      str(requests[(c.label, "cold")])))
        for phase in ("init", "refresh", "download"):
            for c in clients:
                xs = [r[phase] for r in cold[c.label]]
                ref = [r[phase] for r in cold["packman"]]
                print(row(f"  of which {phase}", c.label, xs, None if c.label == "packman" else ref, ""))
        for c in clients:
            print(row("warm: refresh, nothing changed", c.label, warm[c.label],
                      None if c.label == "packman" else ref_warm, str(requests[(c.label, "warm")])))
        print(row("python start-up + import tuf", "python", imp, None, ""))
        print()
        print("requests: HTTP requests the server saw for the scenario (cold: all three processes).")
        print("ratio: python-tuf time / packman time; 'python-tuf +fsync' makes the same durable writes as packman.")
        if args.baseline:
            print(f"packman baseline: {args.baseline / 'packman-conformance'}; its ratio is baseline time / packman time.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
