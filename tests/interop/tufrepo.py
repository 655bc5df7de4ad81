"""Helpers shared by the interop tests and the client benchmark.

* ``RepoBuilder`` builds and signs a TUF repository with python-tuf's Metadata API
  (consistent snapshots: ``N.role.json`` metadata, ``dir/SHA256.name`` target files),
  optionally with TAP 15 succinct hashed bins.
* ``RepoServer`` serves a directory from a threaded ``http.server`` on 127.0.0.1 (port 0)
  in a background thread and logs every request, so tests can assert what a client
  fetched.

Nothing here talks to anything but the loopback interface.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    DelegatedRole,
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
from tuf.api.serialization.json import JSONSerializer

TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")

KEY_GENERATORS: dict[str, Callable[[], CryptoSigner]] = {
    "ed25519": CryptoSigner.generate_ed25519,
    "ecdsa": CryptoSigner.generate_ecdsa,  # ecdsa-sha2-nistp256
    "rsa": CryptoSigner.generate_rsa,  # 3072 bit, rsassa-pss-sha256
    "rsa-pkcs1v15": functools.partial(CryptoSigner.generate_rsa, scheme="rsa-pkcs1v15-sha256"),
}

_SERIALIZER = JSONSerializer(compact=False)


def new_signer(key_type: str) -> CryptoSigner:
    return KEY_GENERATORS[key_type]()


def _expiry(days: int) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(microsecond=0)


class RepoBuilder:
    """A consistent-snapshot TUF repository written under ``path``.

    ``path/metadata`` holds ``N.root.json``, ``N.<role>.json`` (targets, delegated roles,
    bins, snapshot) and ``timestamp.json``; ``path/targets`` holds ``dir/SHA256.name``.
    Every ``publish()`` writes new versions of whatever changed, a new snapshot and a new
    timestamp.
    """

    def __init__(
        self,
        path: Path,
        key_type: str = "ed25519",
        expires_days: int = 365,
        snapshot_meta_hashes: bool = False,
        timestamp_meta_hashes: bool = True,
    ):
        self.path = Path(path)
        self.metadata_dir = self.path / "metadata"
        self.targets_dir = self.path / "targets"
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.expires = _expiry(expires_days)
        # Whether snapshot (for targets roles) and timestamp (for snapshot) give length and
        # sha256 of the files they list, or only their versions.
        self.snapshot_meta_hashes = snapshot_meta_hashes
        self.timestamp_meta_hashes = timestamp_meta_hashes
        self._role_bytes: dict[str, bytes] = {}  # newest bytes of each targets role/bin

        self.signers: dict[str, list[Signer]] = {}
        root = Root(expires=self.expires, consistent_snapshot=True)
        for role in TOP_LEVEL:
            signer = new_signer(key_type)
            root.add_key(signer.public_key, role)
            self.signers[role] = [signer]
        self.root = Metadata(root)
        self._root_written = 0
        # Signers of the previous root version, needed to sign a rotated root.
        self._previous_root_signers: list[Signer] = []

        # Targets roles (top-level "targets" and explicitly delegated ones), by name.
        self.roles: dict[str, Metadata[Targets]] = {"targets": Metadata(Targets(version=1, expires=self.expires))}
        self._written: dict[str, int] = {}  # role -> version last written
        self._dirty: set[str] = {"targets"}

        # Succinct hashed bins, if enabled.
        self.succinct: SuccinctRoles | None = None
        self.bin_targets: dict[str, dict[str, TargetFile]] = {}
        self.bin_versions: dict[str, int] = {}
        self._dirty_bins: set[str] = set()

        self.snapshot_version = 0
        self.timestamp_version = 0
        self.target_data: dict[str, bytes] = {}

    # ---- keys and delegations -------------------------------------------------------

    def set_role_keys(self, role: str, key_types: list[str], threshold: int) -> None:
        """Replace the keys of top-level ``role`` with fresh keys of the given types."""
        r = self.root.signed
        for keyid in list(r.roles[role].keyids):
            r.revoke_key(keyid, role)
        self.signers[role] = []
        for kt in key_types:
            s = new_signer(kt)
            r.add_key(s.public_key, role)
            self.signers[role].append(s)
        r.roles[role].threshold = threshold

    def delegate(
        self,
        parent: str,
        name: str,
        paths: list[str] | None = None,
        terminating: bool = False,
        key_type: str = "ed25519",
        path_hash_prefixes: list[str] | None = None,
        key_types: list[str] | None = None,
        threshold: int = 1,
    ) -> None:
        """Delegate ``paths`` (or ``path_hash_prefixes``) from ``parent`` to a new role
        ``name`` (appended, so the delegation order is the order of calls), with one key
        per entry of ``key_types`` (default: one ``key_type`` key)."""
        p = self.roles[parent].signed
        if p.delegations is None:
            p.delegations = Delegations(keys={}, roles={})
        p.delegations.roles[name] = DelegatedRole(
            name, [], threshold, terminating, paths=paths, path_hash_prefixes=path_hash_prefixes
        )
        self.signers[name] = []
        for kt in key_types or [key_type]:
            signer = new_signer(kt)
            p.add_key(signer.public_key, name)
            self.signers[name].append(signer)
        self.roles[name] = Metadata(Targets(version=1, expires=self.expires))
        self._dirty |= {parent, name}

    def enable_bins(self, bit_length: int, name_prefix: str = "bins", key_type: str = "ed25519") -> None:
        """Delegate everything from top-level targets to 2**bit_length succinct hashed bins."""
        t = self.roles["targets"].signed
        self.succinct = SuccinctRoles([], 1, bit_length, name_prefix)
        t.delegations = Delegations(keys={}, succinct_roles=self.succinct)
        signer = new_signer(key_type)
        t.add_key(signer.public_key)
        self.signers["<bins>"] = [signer]
        self.bin_versions = {b: 0 for b in self.succinct.get_roles()}
        self._dirty_bins = set(self.bin_versions)
        self._dirty.add("targets")

    def bin_for(self, target_path: str) -> str:
        assert self.succinct is not None
        return self.succinct.get_role_for_target(target_path)

    # ---- targets ----------------------------------------------------------------------

    def add_target(self, path: str, data: bytes, role: str | None = None) -> str:
        """Add target ``path`` to ``role`` (default: its hashed bin if bins are enabled,
        else top-level targets). Writes ``targets/dir/SHA256.name``. Returns the role."""
        tf = TargetFile.from_data(path, data, ["sha256"])
        digest = tf.hashes["sha256"]
        directory, _, name = path.rpartition("/")
        dest = self.targets_dir / directory / f"{digest}.{name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        self.target_data[path] = data
        if role is None and self.succinct is not None:
            b = self.bin_for(path)
            self.bin_targets.setdefault(b, {})[path] = tf
            self._dirty_bins.add(b)
            return b
        role = role or "targets"
        self.roles[role].signed.targets[path] = tf
        self._dirty.add(role)
        return role

    def target_file_path(self, path: str) -> Path:
        digest = hashlib.sha256(self.target_data[path]).hexdigest()
        directory, _, name = path.rpartition("/")
        return self.targets_dir / directory / f"{digest}.{name}"

    # ---- root rotation ----------------------------------------------------------------

    def _next_root(self) -> None:
        r = self.root.signed
        if self._root_written == r.version:
            r.version += 1
            self._previous_root_signers = list(self.signers["root"])

    def rotate_key(self, role: str, key_type: str = "ed25519") -> None:
        """Replace the key of top-level ``role`` in the next root version. A new root is
        signed by the previous root's keys and by its own (written by ``publish()``)."""
        self._next_root()
        r = self.root.signed
        for keyid in list(r.roles[role].keyids):
            r.revoke_key(keyid, role)
        s = new_signer(key_type)
        r.add_key(s.public_key, role)
        self.signers[role] = [s]

    # ---- writing ----------------------------------------------------------------------

    def _sign(self, md: Metadata, signers: list[Signer]) -> bytes:
        md.signatures.clear()
        for s in signers:
            md.sign(s, append=True)
        return md.to_bytes(_SERIALIZER)

    def _write(self, name: str, data: bytes) -> None:
        # A role name with "/" becomes a subdirectory: clients request the name
        # percent-encoded and a static server decodes it to this path.
        path = self.metadata_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def publish(self) -> None:
        r = self.root.signed
        if self._root_written != r.version:
            signers = list(self.signers["root"])
            if r.version > 1:
                known = {s.public_key.keyid for s in signers}
                signers += [s for s in self._previous_root_signers if s.public_key.keyid not in known]
            self._write(f"{r.version}.root.json", self._sign(self.root, signers))
            self._root_written = r.version
            self._previous_root_signers = list(self.signers["root"])

        meta: dict[str, MetaFile] = {}
        for name, md in self.roles.items():
            if name in self._dirty:
                if self._written.get(name) == md.signed.version:
                    md.signed.version += 1
                self._written[name] = md.signed.version
                md.signed.expires = self.expires
                self._role_bytes[name] = self._sign(md, self.signers[name])
                self._write(f"{md.signed.version}.{name}.json", self._role_bytes[name])
            meta[f"{name}.json"] = self._metafile(md.signed.version, self._role_bytes[name])
        self._dirty.clear()

        if self.succinct is not None:
            bin_signers = self.signers["<bins>"]
            empty_cache: dict[int, bytes] = {}
            for b in sorted(self._dirty_bins):
                self.bin_versions[b] += 1
                v = self.bin_versions[b]
                targets = self.bin_targets.get(b)
                if targets:
                    data = self._sign(Metadata(Targets(version=v, expires=self.expires, targets=targets)), bin_signers)
                else:
                    # An empty bin's signed part does not name the bin, so one signature
                    # serves every empty bin of the same version.
                    if v not in empty_cache:
                        empty_cache[v] = self._sign(Metadata(Targets(version=v, expires=self.expires)), bin_signers)
                    data = empty_cache[v]
                self._write(f"{v}.{b}.json", data)
                if self.snapshot_meta_hashes:
                    self._role_bytes[b] = data
            self._dirty_bins.clear()
            for b, v in self.bin_versions.items():
                meta[f"{b}.json"] = self._metafile(v, self._role_bytes.get(b))

        self.snapshot_version += 1
        snap = Metadata(Snapshot(version=self.snapshot_version, expires=self.expires, meta=meta))
        snap_bytes = self._sign(snap, self.signers["snapshot"])
        self._write(f"{self.snapshot_version}.snapshot.json", snap_bytes)
        self.publish_timestamp(snap_bytes)

    def _metafile(self, version: int, data: bytes | None) -> MetaFile:
        if self.snapshot_meta_hashes and data is not None:
            return MetaFile.from_data(version, data, ["sha256"])
        return MetaFile(version)

    def publish_timestamp(self, snapshot_bytes: bytes | None = None) -> None:
        if snapshot_bytes is None:
            snapshot_bytes = (self.metadata_dir / f"{self.snapshot_version}.snapshot.json").read_bytes()
        self.timestamp_version += 1
        ts = Metadata(
            Timestamp(
                version=self.timestamp_version,
                expires=self.expires,
                snapshot_meta=MetaFile.from_data(self.snapshot_version, snapshot_bytes, ["sha256"])
                if self.timestamp_meta_hashes
                else MetaFile(self.snapshot_version),
            )
        )
        self._write("timestamp.json", self._sign(ts, self.signers["timestamp"]))

    @property
    def root_path(self) -> Path:
        return self.metadata_dir / "1.root.json"


class _Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms per response on a kept-alive connection).
    disable_nagle_algorithm = True
    request_log: list[tuple[str, int]]
    log_lock: threading.Lock

    def log_request(self, code="-", size="-"):  # noqa: D401 - records instead of printing
        try:
            status = int(code)
        except (TypeError, ValueError):
            status = int(getattr(code, "value", 0) or 0)
        with self.log_lock:
            self.request_log.append((self.path, status))

    def log_message(self, format, *args):  # silence stderr
        pass


class RepoServer:
    """Serves ``directory`` on http://127.0.0.1:<free port>/ from a background thread."""

    def __init__(self, directory: Path):
        self.requests: list[tuple[str, int]] = []
        lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"request_log": self.requests, "log_lock": lock})
        self._lock = lock
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=os.fspath(directory))
        )
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def paths(self) -> list[str]:
        with self._lock:
            return [p for p, _ in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "RepoServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
