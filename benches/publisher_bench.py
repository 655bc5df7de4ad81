"""packman vs python-tuf: building a PyPI-sized repository, then adding one file.

    .venv/bin/python benches/publisher_bench.py [--targets 1000000] [--bit-length 14]
                                                [--build-reps 3] [--add-reps 5] [--workdir DIR] [--keep]

1. Build: a repository of N targets (default 1,000,000) in 2**14 = 16384 succinct hashed
   bins (TAP 15), consistent snapshots, every bin signed, then snapshot and timestamp, all
   written to disk; wall time and peak RSS of the whole process.
     packman     `packman-bench build-1m DIR --targets N --bins 16384`: Repository::init_with,
                 whose first publish lists the N targets (two threads make and prepare the
                 entries, Repository::prepare_target; the main thread lists them,
                 add_prepared), every bin signed and written once.
     python-tuf  this script in a subprocess, with the Metadata API: the same N TargetFile
                 entries (same paths, lengths, sha256+sha512 of the path bytes), grouped by
                 SuccinctRoles.get_role_for_target, every bin signed and written, then
                 targets, root, snapshot, timestamp; then os.sync() (packman makes its
                 files durable; the sync is timed separately and included in "+sync").
   Neither hashes a million real files: the entries are synthetic. --build-reps builds
   (default 3) of each side, alternating (packman, python-tuf, packman, ...), each into a
   fresh directory; medians and min-max reported. The adds use the last build of each.
   Key types: both sides sign bins, snapshot and timestamp with ECDSA P-256 and root and
   targets with Ed25519 (packman's `repo init` defaults); the script reads the schemes from
   each built repository's root and targets metadata, labels the rows with them, and stops
   if the two sides differ.

2. Add one file to that repository:
     packman     `packman repo add DIR pkg.whl` (a small valid wheel, a new version each
                 time: the wheel, its .metadata, the project's pages and the project list,
                 each listed in its bin) and `packman repo add DIR --raw note-K.txt` (one
                 plain target), whole processes; the "published: N metadata file(s)" line
                 gives how many metadata files each rewrote.
     python-tuf  one plain target: load timestamp, snapshot, targets and the target's bin,
                 add the TargetFile, re-sign the bin, snapshot and timestamp, write them and
                 the target file. In-process (keys loaded, modules imported) and as a fresh
                 process (`python publisher_bench.py _py-add ...`), the latter also with
                 --fsync (every file and its directory fsynced: durable on return, as
                 packman's files are, which it gets with two syncfs calls).

   Settled: before each timed run (untimed) the filesystem is synced, so each starts with
   nothing dirty. Without it (--no-settle), packman's syncfs would also write what the
   python-tuf adds just before it left unsynced (about 1 MB: the in-process and plain
   fresh-process adds rewrite a 500 KB snapshot each without fsync), and the wheel add, which
   follows them, would be timed doing python-tuf's writes too (wheel minus --raw: 1.2-1.6 ms
   settled, 1.2-3.6 ms not, in this session's runs; see benches/README). syncfs
   writing other processes' dirty data is a real cost for a repository on a busy
   filesystem; benches/README and batch.rs say so.

   Interleaved with these, two reference rows through the same harness: /bin/true (what
   starting and reaping any process costs here) and `packman --version` (packman's start-up).

Prints absolute figures and the ratios python-tuf / packman. Binaries come from
$PACKMAN_BIN_DIR (default <repo>/target/release): `cargo build --release -p packman -p packman-bench`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
GNU_TIME = Path("/usr/bin/time")
THIS = Path(__file__).resolve()

# ---------------------------------------------------------------------------------------
# Measuring subprocesses


def peak_rss_self_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_measured(cmd: list[str], timeout: float = 3600) -> tuple[float, int | None, str]:
    """Runs cmd; returns (wall seconds, peak RSS KiB, stdout). Wall time is taken here
    (perf_counter); peak RSS from /usr/bin/time -f %M when present, else from the rusage
    os.wait4 returns for that child."""
    if os.access(GNU_TIME, os.X_OK):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
            t = time.perf_counter()
            p = subprocess.run([os.fspath(GNU_TIME), "-f", "%e %M", "-o", tf.name, *cmd],
                               capture_output=True, text=True, timeout=timeout)
            wall = time.perf_counter() - t
            check(p, cmd)
            fields = tf.read().split()
            return wall, int(fields[-1]) if fields else None, p.stdout
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        check(subprocess.CompletedProcess(cmd, p.returncode, stdout, err.read()), cmd)
        return wall, usage.ru_maxrss, stdout


HARNESS_TRUE = "harness: /bin/true"
HARNESS_VERSION = "harness: packman --version"


def run_timed(cmd: list[str]) -> tuple[float, str]:
    """Whole-process wall time (perf_counter around subprocess.run), stdout."""
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    check(p, cmd)
    return wall, p.stdout


def check(p: subprocess.CompletedProcess, cmd: list[str]) -> None:
    if p.returncode != 0:
        sys.exit(f"benchmark command failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stdout}\n{p.stderr}")


def json_line(out: str) -> dict:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON summary in output:\n{out}")


# ---------------------------------------------------------------------------------------
# The workload, shared by both sides


def synthetic(i: int) -> tuple[str, int, str, str]:
    """Target i: path, length, sha256 and sha512 (of the path bytes), as packman-bench."""
    path = f"packages/project{i % 700_000}/project{i}-1.0.tar.gz"
    b = path.encode()
    length = 2048 + (i * 2_654_435_761) % 50_000_000
    return path, length, hashlib.sha256(b).hexdigest(), hashlib.sha512(b).hexdigest()


def make_wheel(path: Path, name: str, version: str) -> None:
    """A small valid wheel: a module, METADATA (2.1), WHEEL and RECORD."""
    di = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: benchmark wheel\n\n".encode(),
        f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: publisher_bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for k, v in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b"=").decode()
        record += f"{k},sha256={digest},{len(v)}\n"
    record += f"{di}/RECORD,,\n"
    files[f"{di}/RECORD"] = record.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in files.items():
            z.writestr(k, v)


PUBLISHED_RE = re.compile(r"^published: (\d+) metadata file\(s\) \(([^)]*)\)", re.M)


def published(out: str) -> tuple[int, list[str]]:
    m = PUBLISHED_RE.search(out)
    if not m:
        raise ValueError(f"no 'published:' line in:\n{out}")
    return int(m.group(1)), [s.strip() for s in m.group(2).split(",") if s.strip()]


# ---------------------------------------------------------------------------------------
# python-tuf side (imported lazily: the driver measures subprocesses)

ROLES = ("root", "targets", "snapshot", "timestamp", "bins")


def _expiry(days: int) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(microsecond=0)


def _write(path: Path, data: bytes, fsync: bool) -> None:
    """python-tuf's own writes (Metadata.to_file) are a temp file and a rename; so here,
    plus fsync of the file when asked (directories are synced by the caller)."""
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def py_build(out_dir: Path, n: int, bit_length: int) -> dict:
    """The python-tuf build; returns phase timings."""
    from securesystemslib.signer import CryptoSigner  # noqa: PLC0415
    from tuf.api.metadata import (  # noqa: PLC0415
        Delegations,
        Metadata,
        MetaFile,
        Root,
        Snapshot,
        SuccinctRoles,
        TargetFile,
        Targets,
        Timestamp,
    )

    t0 = time.perf_counter()
    md_dir, keys_dir = out_dir / "metadata", out_dir / "keys"
    for d in (md_dir, keys_dir, out_dir / "targets"):
        d.mkdir(parents=True, exist_ok=True)
    # The key types packman's `repo init` makes: ed25519 for root and targets (offline),
    # ECDSA P-256 for the online roles, which sign the big files (ed25519 hashes with SHA-512,
    # which has no hardware support here; P-256 signs a SHA-256 digest).
    signers = {r: CryptoSigner.generate_ed25519() if r in ("root", "targets") else CryptoSigner.generate_ecdsa()
               for r in ROLES}
    for r, s in signers.items():
        (keys_dir / f"{r}.pem").write_bytes(s.private_bytes)
    root = Root(expires=_expiry(365), consistent_snapshot=True)
    for r in ("root", "targets", "snapshot", "timestamp"):
        root.add_key(signers[r].public_key, r)
    succinct = SuccinctRoles([], 1, bit_length, "bins")
    targets = Targets(version=1, expires=_expiry(365))
    targets.delegations = Delegations(keys={}, succinct_roles=succinct)
    targets.add_key(signers["bins"].public_key)
    setup = time.perf_counter() - t0

    t = time.perf_counter()
    bins: dict[str, dict[str, TargetFile]] = {name: {} for name in succinct.get_roles()}
    for i in range(n):
        path, length, sha256, sha512 = synthetic(i)
        bins[succinct.get_role_for_target(path)][path] = TargetFile(length, {"sha256": sha256, "sha512": sha512}, path)
    entries = time.perf_counter() - t

    t = time.perf_counter()
    expires = _expiry(90)
    meta: dict[str, MetaFile] = {}
    empty: bytes | None = None
    for name, listed in bins.items():
        if listed or empty is None:
            md = Metadata(Targets(version=1, expires=expires, targets=listed))
            md.sign(signers["bins"])
            data = md.to_bytes()
            if not listed:
                empty = data
        else:
            data = empty  # an empty bin's signed part does not name the bin: one signature serves all
        _write(md_dir / f"1.{name}.json", data, False)
        meta[f"{name}.json"] = MetaFile(1)
    sign_bins = time.perf_counter() - t
    del bins

    t = time.perf_counter()
    for role, obj, fname in (("targets", targets, "1.targets.json"), ("root", root, "1.root.json")):
        md = Metadata(obj)
        md.sign(signers[role])
        _write(md_dir / fname, md.to_bytes(), False)
    (md_dir / "root.json").write_bytes((md_dir / "1.root.json").read_bytes())
    meta["targets.json"] = MetaFile(1)
    snap = Metadata(Snapshot(version=1, expires=_expiry(30), meta=meta))
    snap.sign(signers["snapshot"])
    snap_bytes = snap.to_bytes()
    _write(md_dir / "1.snapshot.json", snap_bytes, False)
    ts = Metadata(Timestamp(version=1, expires=_expiry(1), snapshot_meta=MetaFile.from_data(1, snap_bytes, ["sha256"])))
    ts.sign(signers["timestamp"])
    _write(md_dir / "timestamp.json", ts.to_bytes(), False)
    top = time.perf_counter() - t
    unsynced = time.perf_counter() - t0

    t = time.perf_counter()
    os.sync()
    sync = time.perf_counter() - t
    return {
        "setup_s": setup, "entries_s": entries, "sign_write_bins_s": sign_bins, "top_level_s": top,
        "elapsed_unsynced_s": unsynced, "sync_s": sync, "elapsed_s": time.perf_counter() - t0,
        "snapshot_bytes": len(snap_bytes), "peak_rss_kib": peak_rss_self_kib(),
    }


class PyRepo:
    """Keys of a repository py_build wrote, loaded once."""

    def __init__(self, repo_dir: Path):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key  # noqa: PLC0415
        from securesystemslib.signer import CryptoSigner  # noqa: PLC0415

        self.dir = repo_dir
        self.signers = {
            r: CryptoSigner(load_pem_private_key((repo_dir / "keys" / f"{r}.pem").read_bytes(), None)) for r in ROLES
        }

    def add(self, path: str, src: Path, fsync: bool = False) -> list[str]:
        """Lists one target: new bin, snapshot and timestamp versions. Returns the metadata
        files written."""
        from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp  # noqa: PLC0415

        md_dir = self.dir / "metadata"
        ts = Metadata[Timestamp].from_bytes((md_dir / "timestamp.json").read_bytes())
        sv = ts.signed.snapshot_meta.version
        snap = Metadata[Snapshot].from_bytes((md_dir / f"{sv}.snapshot.json").read_bytes())
        tv = snap.signed.meta["targets.json"].version
        top = Metadata[Targets].from_bytes((md_dir / f"{tv}.targets.json").read_bytes())
        bin_name = top.signed.delegations.succinct_roles.get_role_for_target(path)
        bv = snap.signed.meta[f"{bin_name}.json"].version
        b = Metadata[Targets].from_bytes((md_dir / f"{bv}.{bin_name}.json").read_bytes())

        data = src.read_bytes()
        tf = TargetFile.from_data(path, data, ["sha256", "sha512"])
        directory, _, fname = path.rpartition("/")
        tdir = self.dir / "targets" / directory
        tdir.mkdir(parents=True, exist_ok=True)
        _write(tdir / f"{tf.hashes['sha256']}.{fname}", data, fsync)
        if fsync:
            _fsync_dir(tdir)

        b.signed.targets[path] = tf
        b.signed.version += 1
        b.signed.expires = _expiry(90)
        b.signatures.clear()
        b.sign(self.signers["bins"])
        written = [f"{b.signed.version}.{bin_name}.json"]
        _write(md_dir / written[0], b.to_bytes(), fsync)

        snap.signed.meta[f"{bin_name}.json"].version = b.signed.version
        snap.signed.version += 1
        snap.signed.expires = _expiry(30)
        snap.signatures.clear()
        snap.sign(self.signers["snapshot"])
        snap_bytes = snap.to_bytes()
        written.append(f"{snap.signed.version}.snapshot.json")
        _write(md_dir / written[-1], snap_bytes, fsync)
        if fsync:
            _fsync_dir(md_dir)

        ts.signed.snapshot_meta = MetaFile.from_data(snap.signed.version, snap_bytes, ["sha256"])
        ts.signed.version += 1
        ts.signed.expires = _expiry(1)
        ts.signatures.clear()
        ts.sign(self.signers["timestamp"])
        _write(md_dir / "timestamp.json", ts.to_bytes(), fsync)
        if fsync:
            _fsync_dir(md_dir)
        written.append("timestamp.json")
        return written


def internal(argv: list[str]) -> None:
    """Subprocess entry points: `_py-build DIR N BITS`, `_py-add DIR TARGETPATH FILE [--fsync]`."""
    if argv[0] == "_py-build":
        r = py_build(Path(argv[1]), int(argv[2]), int(argv[3]))
        r["peak_rss_kib"] = peak_rss_self_kib()
        print(json.dumps(r))
    elif argv[0] == "_py-add":
        written = PyRepo(Path(argv[1])).add(argv[2], Path(argv[3]), fsync="--fsync" in argv[4:])
        print(f"published: {len(written)} metadata file(s) ({', '.join(written)})")
    else:
        sys.exit(f"unknown internal command {argv[0]}")


# ---------------------------------------------------------------------------------------
# Driver


def fmt_s(x: float) -> str:
    return f"{x:.3f} s" if x >= 1 else f"{x * 1000:.1f} ms"


def spread(xs: list[float]) -> str:
    lo, hi = min(xs), max(xs)
    return f"[{lo:.3f}-{hi:.3f} s]" if lo >= 1 else f"[{lo * 1000:.1f}-{hi * 1000:.1f} ms]"


SCHEME_NAMES = {"ecdsa-sha2-nistp256": "ECDSA P-256", "ed25519": "Ed25519"}


def key_schemes(repo_dir: Path) -> dict[str, str]:
    """The signature scheme of each role's keys, from the repository's newest root and
    targets metadata (bins: the succinct delegation's keys)."""
    md = repo_dir / "metadata"

    def newest(role: str) -> dict:
        versions = [(int(p.name.split(".", 1)[0]), p) for p in md.glob(f"*.{role}.json")
                    if p.name.split(".", 1)[0].isdigit()]
        if not versions:
            sys.exit(f"no N.{role}.json in {md}")
        return json.loads(max(versions)[1].read_bytes())["signed"]

    out: dict[str, str] = {}
    root = newest("root")
    for role, r in root["roles"].items():
        out[role] = "/".join(sorted({root["keys"][k]["scheme"] for k in r["keyids"]}))
    dele = newest("targets").get("delegations") or {}
    if dele.get("succinct_roles"):
        out["bins"] = "/".join(sorted({dele["keys"][k]["scheme"] for k in dele["succinct_roles"]["keyids"]}))
    return out


def label_schemes(schemes: dict[str, str], roles: tuple[str, ...]) -> str:
    """'(ECDSA P-256)' when the roles share a scheme, else each role's."""
    names = {r: SCHEME_NAMES.get(schemes.get(r, "?"), schemes.get(r, "?")) for r in roles}
    if len(set(names.values())) == 1:
        return f"({next(iter(names.values()))})"
    return "(" + ", ".join(f"{r} {n}" for r, n in names.items()) + ")"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_py-"):
        internal(sys.argv[1:])
        return
    ap = argparse.ArgumentParser(description="packman vs python-tuf publisher benchmark")
    ap.add_argument("--targets", type=int, default=1_000_000, help="targets in the repository (default 1,000,000)")
    ap.add_argument("--bit-length", type=int, default=14, help="succinct hashed bins bit length (default 14: 16384 bins)")
    ap.add_argument("--build-reps", type=int, default=3,
                    help="builds per side, alternating packman and python-tuf; median and min-max reported (default 3)")
    ap.add_argument("--add-reps", type=int, default=5, help="timed adds per scenario (default 5, after one warm-up)")
    ap.add_argument("--workdir", type=Path, help="where to build the repositories (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the repositories (deleting ~50k files takes a while)")
    ap.add_argument("--skip-python-build", action="store_true", help="skip python-tuf's build (add still runs on a small repo)")
    ap.add_argument("--baseline", type=Path, metavar="BIN_DIR",
                    help="also build and add with the packman and packman-bench in BIN_DIR (e.g. a build of the "
                         "previous main), on a repository of its own, interleaved with the others")
    ap.add_argument("--no-settle", action="store_true",
                    help="do not sync the filesystem (untimed) before each timed add; see 'settled' in the docstring")
    args = ap.parse_args()

    packman, bench = BIN_DIR / "packman", BIN_DIR / "packman-bench"
    for b in (packman, bench):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} not found: cargo build --release -p packman -p packman-bench (or set PACKMAN_BIN_DIR)")
    bins = 2 ** args.bit_length

    import tuf  # noqa: PLC0415 - version only

    print(f"workload: {args.targets:,} targets in {bins} succinct hashed bins, consistent snapshots, "
          "ed25519 root/targets keys, ECDSA P-256 bins/snapshot/timestamp keys (both sides)")
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, python-tuf {tuf.__version__}")
    print(f"packman: {BIN_DIR}; peak RSS via {'/usr/bin/time %M' if os.access(GNU_TIME, os.X_OK) else 'getrusage'}")
    print(flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="publisher-bench-", dir=args.workdir))
    try:
        # ---- 1. builds ------------------------------------------------------------------
        pm_dir, py_dir, files = tmp / "packman-repo", tmp / "python-tuf-repo", tmp / "files"
        files.mkdir()
        # Alternate the sides (A B A B ...), each build into a fresh directory (the previous
        # one removed first), so that a slow spell on this shared machine lands on both.
        builds: dict[str, list[tuple[float, int]]] = {"packman": [], "python-tuf": [], "baseline": []}
        pm = py = None
        py_unsynced: list[float] = []
        bl_dir = tmp / "baseline-repo"
        for rep in range(args.build_reps):
            sides = ["packman", "python-tuf", "baseline"] if rep % 2 == 0 else ["python-tuf", "packman", "baseline"]
            for side in sides:
                if side == "baseline" and not args.baseline:
                    continue
                if side == "python-tuf" and args.skip_python_build:
                    continue
                d = {"packman": pm_dir, "python-tuf": py_dir, "baseline": bl_dir}[side]
                shutil.rmtree(d, ignore_errors=True)
                os.sync()  # untimed: nothing the previous build (or its removal) left dirty
                print(f"[{side}] build {rep + 1}/{args.build_reps}, {args.targets:,} targets ...",
                      file=sys.stderr, flush=True)
                if side == "python-tuf":
                    cmd = [sys.executable, os.fspath(THIS), "_py-build", os.fspath(d), str(args.targets),
                           str(args.bit_length)]
                else:
                    exe = bench if side == "packman" else args.baseline / "packman-bench"
                    cmd = [os.fspath(exe), "build-1m", os.fspath(d), "--targets", str(args.targets),
                           "--bins", str(bins), "--json"]
                wall, rss, out = run_measured(cmd)
                builds[side].append((wall, rss or 0))
                if side == "packman":
                    pm = json_line(out)
                elif side == "python-tuf":
                    py = json_line(out)
                    py_unsynced.append(wall - py["sync_s"])
                print(f"[{side}] {wall:.2f} s, {(rss or 0) / 1024:.0f} MiB", file=sys.stderr, flush=True)
        if args.skip_python_build:
            py_build(py_dir, min(args.targets, 10_000), args.bit_length)

        # Which key types each side signed with, from what it wrote.
        schemes = {"packman": key_schemes(pm_dir), "python-tuf": key_schemes(py_dir)}
        for role in ("bins", "snapshot", "timestamp", "root", "targets"):
            if schemes["packman"].get(role) != schemes["python-tuf"].get(role):
                sys.exit(f"key types differ for {role}: packman {schemes['packman'].get(role)}, "
                         f"python-tuf {schemes['python-tuf'].get(role)}: the comparison would not be like for like")
        online = label_schemes(schemes["packman"], ("bins", "snapshot", "timestamp"))

        # ---- 2. adds --------------------------------------------------------------------
        def pm_add(k: int, raw: bool, exe: Path = packman, repo_dir: Path = pm_dir) -> tuple[float, int, list[str]]:
            if raw:
                f = files / f"note-{k}.txt"
                f.write_bytes(f"benchmark note {k}\n".encode() * 20)
                cmd = [os.fspath(exe), "repo", "add", os.fspath(repo_dir), "--raw", "--prefix", "notes/", os.fspath(f)]
            else:
                f = files / f"benchpkg-1.{k}-py3-none-any.whl"
                make_wheel(f, "benchpkg", f"1.{k}")
                cmd = [os.fspath(exe), "repo", "add", os.fspath(repo_dir), os.fspath(f)]
            wall, out = run_timed(cmd)
            n, names = published(out)
            return wall, n, names

        def py_note(k: int) -> tuple[str, Path]:
            f = files / f"py-note-{k}.txt"
            f.write_bytes(f"benchmark note {k}\n".encode() * 20)
            return f"notes/py-note-{k}.txt", f

        reps = args.add_reps
        results: dict[str, list[float]] = {}
        written: dict[str, tuple[int, list[str]]] = {}
        k = 0
        # Interleave the scenarios, one warm-up round first (page cache, .pyc files).
        pyrepo = PyRepo(py_dir)
        for rnd in range(reps + 1):
            baseline = ("baseline add wheel", "baseline add --raw") if args.baseline else ()
            for scenario in ("packman add wheel", "packman add --raw", *baseline, "python-tuf add, in-process",
                             "python-tuf add, fresh process", "python-tuf add, fresh +fsync",
                             HARNESS_TRUE, HARNESS_VERSION):
                k += 1
                if not args.no_settle:
                    # Untimed: every run starts with nothing dirty on the filesystem (see
                    # "settled" above), not with what the previous scenario left unsynced.
                    os.sync()
                if scenario == HARNESS_TRUE:
                    wall, _ = run_timed([shutil.which("true") or "/bin/true"])
                    written[scenario] = (0, [])
                elif scenario == HARNESS_VERSION:
                    wall, _ = run_timed([os.fspath(packman), "--version"])
                    written[scenario] = (0, [])
                elif scenario.startswith("packman"):
                    wall, n, names = pm_add(k, raw=scenario.endswith("--raw"))
                    written[scenario] = (n, names)
                elif scenario.startswith("baseline"):
                    wall, n, names = pm_add(k, scenario.endswith("--raw"), args.baseline / "packman", bl_dir)
                    written[scenario] = (n, names)
                elif scenario.endswith("in-process"):
                    path, f = py_note(k)
                    t = time.perf_counter()
                    names = pyrepo.add(path, f)
                    wall = time.perf_counter() - t
                    written[scenario] = (len(names), names)
                else:
                    path, f = py_note(k)
                    cmd = [sys.executable, os.fspath(THIS), "_py-add", os.fspath(py_dir), path, os.fspath(f)]
                    if scenario.endswith("+fsync"):
                        cmd.append("--fsync")
                    wall, out = run_timed(cmd)
                    written[scenario] = published(out)
                if rnd > 0:
                    results.setdefault(scenario, []).append(wall)
            print(f"  add round {rnd}/{reps} done{' (warm-up)' if rnd == 0 else ''}", file=sys.stderr, flush=True)

        imp = []
        for _ in range(reps):
            w, _ = run_timed([sys.executable, "-c", "import tuf.api.metadata, securesystemslib.signer"])
            imp.append(w)

        # ---- report ---------------------------------------------------------------------
        def med_spread(side: str, k: int) -> tuple[float, float, float]:
            xs = [b[k] for b in builds[side]]
            return statistics.median(xs), min(xs), max(xs)

        print(f"1. Build and sign, every bin and the snapshot signed {online} (whole process: wall time, "
              f"peak RSS; median [min-max] of {args.build_reps} builds per side, sides alternating)")
        head = f"   {'':<46} {'time':>10} {'[min-max]':>15} {'peak RSS':>10}   {'ratio python-tuf/packman (medians)':>34}"
        print(head)
        print("   " + "-" * (len(head) - 3))
        pm_wall, pm_lo, pm_hi = med_spread("packman", 0)
        pm_rss = med_spread("packman", 1)[0]
        print(f"   {'packman build-1m ' + online:<46} {pm_wall:>8.2f} s {f'[{pm_lo:.2f}-{pm_hi:.2f}]':>15} "
              f"{pm_rss / 1024:>6.0f} MiB")
        if py:
            py_wall, py_lo, py_hi = med_spread("python-tuf", 0)
            py_rss = med_spread("python-tuf", 1)[0]
            print(f"   {'python-tuf +sync ' + online:<46} {py_wall:>8.2f} s {f'[{py_lo:.2f}-{py_hi:.2f}]':>15} "
                  f"{py_rss / 1024:>6.0f} MiB   time {py_wall / pm_wall:5.1f}x, memory {py_rss / pm_rss:4.1f}x")
            unsync = statistics.median(py_unsynced)
            print(f"   {'python-tuf without its os.sync()':<46} {unsync:>8.2f} s "
                  f"{f'[{min(py_unsynced):.2f}-{max(py_unsynced):.2f}]':>15} {'':>10}   time {unsync / pm_wall:5.1f}x")
        print(f"   goals for packman: < 4 s ({'met' if pm_wall < 4 else 'MISSED'}), < 512 MiB "
              f"({'met' if pm_rss / 1024 < 512 else 'MISSED'})")
        if args.baseline:
            bl_wall, bl_lo, bl_hi = med_spread("baseline", 0)
            bl_rss = med_spread("baseline", 1)[0]
            print(f"   {'baseline (' + args.baseline.name + ') build-1m':<46} {bl_wall:>8.2f} s "
                  f"{f'[{bl_lo:.2f}-{bl_hi:.2f}]':>15} {bl_rss / 1024:>6.0f} MiB   "
                  f"time {bl_wall / pm_wall:5.2f}x packman's, memory {bl_rss / pm_rss:4.2f}x")
        print(f"   packman phases (last build): keys and root {pm['init_s']:.2f} s, generate + prepare {pm['generate_s']:.2f} s "
              f"(busy time of two threads), listing {pm['add_s']:.2f} s (overlapping them), "
              f"publish {pm['publish_s']:.2f} s, drop {pm['drop_s']:.2f} s; "
              f"RSS before publish {pm['rss_before_publish_kib'] / 1024:.0f} MiB; snapshot {pm['snapshot_bytes'] / 1024:.0f} KiB")
        if py:
            print(f"   python-tuf phases (last build): setup {py['setup_s']:.2f} s, entries {py['entries_s']:.2f} s, sign+write bins "
                  f"{py['sign_write_bins_s']:.2f} s, top-level {py['top_level_s']:.2f} s, os.sync {py['sync_s']:.2f} s; "
                  f"snapshot {py['snapshot_bytes'] / 1024:.0f} KiB")
        print()
        print(f"2. Add one file, bin, snapshot and timestamp signed {online} (median and min-max of {reps} runs "
              "after a warm-up, scenarios interleaved; metadata files rewritten)")
        head = (f"   {'':<34} {'median':>10} {'[min-max]':>17} {'metadata':>9}   "
                f"{'ratio vs packman --raw (median, min)':>36}")
        print(head)
        print("   " + "-" * (len(head) - 3))
        ref = results["packman add --raw"]
        for scenario, xs in results.items():
            if scenario in (HARNESS_TRUE, HARNESS_VERSION):
                continue
            med, mn = statistics.median(xs), min(xs)
            if scenario.startswith("baseline"):
                mine = results[scenario.replace("baseline", "packman")]
                ratio = f"{med / statistics.median(mine):6.2f}x  {mn / min(mine):6.2f}x  (baseline / packman, same scenario)"
            elif scenario.startswith("packman"):
                ratio = ""
            else:
                ratio = f"{med / statistics.median(ref):6.1f}x  {mn / min(ref):6.1f}x"
            print(f"   {scenario:<34} {fmt_s(med):>10} {spread(xs):>17} {written[scenario][0]:>9}   {ratio}")
        print(f"   {'python start-up + import tuf':<34} {fmt_s(statistics.median(imp)):>10} {spread(imp):>17}")
        for scenario in (HARNESS_TRUE, HARNESS_VERSION):
            xs = results[scenario]
            print(f"   {scenario:<34} {fmt_s(statistics.median(xs)):>10} {spread(xs):>17}")
        pm_med = statistics.median(results["packman add --raw"])
        pmw_med = statistics.median(results["packman add wheel"])
        spawn = statistics.median(results[HARNESS_TRUE])
        print("   runs settled: filesystem synced (untimed) before each run" if not args.no_settle
              else "   runs NOT settled (--no-settle): packman's syncfs also writes what python-tuf left unsynced")
        print(f"   goal for packman: one added file < 10 ms as a whole process: --raw {fmt_s(pm_med)} "
              f"({'met' if pm_med < 0.010 else 'MISSED'}), wheel {fmt_s(pmw_med)} ({'met' if pmw_med < 0.010 else 'MISSED'})")
        print(f"   (every figure above includes this harness starting and reaping a process: {fmt_s(spawn)} for "
              f"/bin/true; --raw less that: {fmt_s(pm_med - spawn)})")
        for scenario in ("packman add wheel", "packman add --raw", "python-tuf add, fresh process"):
            n, names = written[scenario]
            print(f"   {scenario}: {n} metadata file(s): {', '.join(names)}")
        print()
        print("python-tuf's adds list one plain target (like --raw). packman's files are durable when it")
        print("returns; '+fsync' makes python-tuf's so too, so that ratio is the like-for-like one. A wheel add")
        print("rewrites the project's pages; the project list (simple/index.*) only when the project is new")
        print("(the warm-up round's add here; see README).")
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            print(f"removing {tmp} ...", file=sys.stderr, flush=True)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
