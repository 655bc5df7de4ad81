"""A minimal TUF client on python-tuf's ngclient, with the same command line as
packman-conformance (the tuf-conformance client CLI), so that the benchmark can time both
clients as whole processes doing the same work:

    ngclient_cli.py --metadata-dir DIR init ROOT_FILE
    ngclient_cli.py --metadata-dir DIR --metadata-url URL refresh
    ngclient_cli.py --metadata-dir DIR --metadata-url URL --target-name PATH [...] \\
        --target-base-url URL --target-dir DIR download

--root ROOT_FILE (refresh, download) starts from that root instead of the one trusted in
DIR (ngclient's bootstrap), so that a cold start is one process, as `packman download
--root` is (benches/peer_bench.py).

Exit 0 on success, 1 on failure.

--fsync makes every write durable the way packman's are (write a temporary file, fsync it,
rename it into place, fsync the directory). Without it python-tuf 7.0 writes metadata
atomically (temporary file + rename) but never calls fsync, and writes downloaded targets
in place.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_write(filename: str, data: bytes) -> None:
    directory = os.path.dirname(filename) or "."
    fd, tmp = tempfile.mkstemp(dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)


def make_updater(args, with_targets: bool):
    from tuf.ngclient import Updater

    cls = Updater
    if args.fsync:

        class DurableUpdater(Updater):
            def _persist_file(self, filename: str, data: bytes) -> None:
                durable_write(filename, data)

        cls = DurableUpdater
    return cls(
        args.metadata_dir,
        args.metadata_url,
        args.target_dir if with_targets else None,
        args.target_base_url if with_targets else None,
        # The given root (a cold start in one process), else the one trusted in metadata_dir.
        bootstrap=open(args.root, "rb").read() if args.root else None,
    )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--metadata-dir", required=True)
    p.add_argument("--metadata-url")
    p.add_argument("--target-name", action="append", default=[])
    p.add_argument("--target-base-url")
    p.add_argument("--target-dir")
    p.add_argument("--fsync", action="store_true", help="make every write durable (fsync file and directory)")
    p.add_argument("--root", help="trusted root.json to start from (refresh, download) instead of METADATA_DIR's")
    sub = p.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init")
    init.add_argument("trusted_root")
    sub.add_parser("refresh")
    sub.add_parser("download")
    args = p.parse_args(argv)

    try:
        if args.command == "init":
            os.makedirs(args.metadata_dir, exist_ok=True)
            with open(args.trusted_root, "rb") as f:
                data = f.read()
            dest = os.path.join(args.metadata_dir, "root.json")
            if args.fsync:
                durable_write(dest, data)
            else:
                with open(dest, "wb") as f:
                    f.write(data)
            return 0
        if not args.metadata_url:
            raise ValueError("--metadata-url is required")
        if args.root:
            os.makedirs(args.metadata_dir, exist_ok=True)
        if args.command == "refresh":
            make_updater(args, with_targets=False).refresh()
            return 0
        # download
        if not (args.target_dir and args.target_base_url):
            raise ValueError("--target-dir and --target-base-url are required")
        os.makedirs(args.target_dir, exist_ok=True)
        up = make_updater(args, with_targets=True)
        for name in args.target_name:
            info = up.get_targetinfo(name)
            if info is None:
                raise ValueError(f"target {name!r} not found")
            if up.find_cached_target(info) is None:
                path = up.download_target(info)
                if args.fsync:
                    with open(path, "rb+") as f:
                        os.fsync(f.fileno())
                    _fsync_dir(os.path.dirname(path) or ".")
        return 0
    except Exception as e:  # the CLI contract: any failure is exit 1 with a reason
        print(f"ngclient_cli: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
