"""Client cost of the two hashed-bin shapes (``packman repo init --bin-style``), in one run.

For 256 and 16384 bins, a repository of each shape is built with the real binary
(``packman repo init`` + one ``repo add`` of ``--files`` plain files) and served by
``packman serve`` on 127.0.0.1. Then, per shape:

* cold: a new client (empty metadata directory) downloads one target: root, timestamp,
  snapshot, targets.json (3 MB in the classic shape at 16384 bins) and one bin;
* warm: the same client downloads another target with its metadata up to date.

Each with ``packman download`` (a process per run) and python-tuf's ngclient (in process),
median of ``--reps`` runs. Printed: the medians and the ratio prefixes/succinct for each.

Run: ``.venv/bin/python benches/bin_style_bench.py [--reps 5] [--files 200]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tuf.ngclient import Updater

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
PACKMAN = os.fspath(BIN_DIR / "packman")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("PACKMAN_")}


def run(*args) -> None:
    subprocess.run([PACKMAN, *map(os.fspath, args)], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)


class Served:
    def __init__(self, base: Path, bins: int, style: str, files: int):
        self.dir = base / f"{style}-{bins}"
        run("repo", "init", self.dir, "--bins", str(bins), "--bin-style", style)
        src = base / "src"
        src.mkdir(exist_ok=True)
        paths = []
        for i in range(files):
            p = src / f"file-{i}.txt"
            p.write_bytes(f"content {i}\n".encode() * 10)
            paths.append(p)
        run("repo", "add", self.dir, "--prefix", "files/", *paths)
        self.targets = [f"files/file-{i}.txt" for i in range(files)]
        self.targets_size = max(p.stat().st_size for p in (self.dir / "metadata").glob("*.targets.json"))
        self.proc = subprocess.Popen([PACKMAN, "serve", os.fspath(self.dir), "--listen", "127.0.0.1:0",
                                      "--access-log", "off"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True, env=ENV)
        self.url = self.proc.stdout.readline().split(" on ", 1)[1].strip().rstrip("/")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def packman_times(s: Served, work: Path, rep: int) -> tuple[float, float]:
    md, dl = work / f"pm-md-{rep}", work / f"pm-dl-{rep}"
    root = s.dir / "metadata" / "1.root.json"
    times = []
    for target in (s.targets[rep], s.targets[-1 - rep]):
        start = time.perf_counter()
        run("download", "--root", root, "--metadata-url", f"{s.url}/metadata/", "--metadata-dir", md,
            "--dest", dl, target)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def python_tuf_times(s: Served, work: Path, rep: int) -> tuple[float, float]:
    md, dl = work / f"py-md-{rep}", work / f"py-dl-{rep}"
    md.mkdir(parents=True)
    dl.mkdir(parents=True)
    root = (s.dir / "metadata" / "1.root.json").read_bytes()
    times = []
    for i, target in enumerate((s.targets[rep], s.targets[-1 - rep])):
        start = time.perf_counter()
        # Cold: from the published root v1; warm: from the metadata trusted locally.
        u = Updater(os.fspath(md), f"{s.url}/metadata/", os.fspath(dl), f"{s.url}/targets/",
                    bootstrap=root if i == 0 else None)
        u.refresh()
        u.download_target(u.get_targetinfo(target))
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--files", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        rows = []
        for bins in (256, 16384):
            result = {}
            for style in ("succinct", "prefixes"):
                s = Served(base, bins, style, args.files)
                try:
                    for client, f in (("packman", packman_times), ("python-tuf", python_tuf_times)):
                        runs = [f(s, base / f"{style}-{bins}-{client}", r) for r in range(args.reps)]
                        result[(client, style)] = (statistics.median(r[0] for r in runs),
                                                   statistics.median(r[1] for r in runs), s.targets_size)
                finally:
                    s.close()
            rows.append((bins, result))
        print(f"{'bins':>6} {'client':<11} {'targets.json succinct/prefixes':>31} "
              f"{'cold ms s/p':>15} {'ratio':>6} {'warm ms s/p':>15} {'ratio':>6}")
        for bins, result in rows:
            for client in ("packman", "python-tuf"):
                sc, sw, ss = result[(client, "succinct")]
                pc, pw, ps = result[(client, "prefixes")]
                print(f"{bins:>6} {client:<11} {ss:>14,} / {ps:>14,} {sc * 1000:>7.1f}/{pc * 1000:<7.1f} "
                      f"{pc / sc:>6.2f} {sw * 1000:>7.1f}/{pw * 1000:<7.1f} {pw / sw:>6.2f}")


if __name__ == "__main__":
    sys.exit(main())
