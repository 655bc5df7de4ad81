"""``packman mirror`` against real servers: the upstream served by nginx (Debian's package)
and by ``packman serve``, every resulting mirror read by three clients.

The upstream is built with the ``packman repo`` CLI: small pure-Python wheels built here
(no network) published with ``packman repo add``, and a raw file. nginx runs in the
foreground on 127.0.0.1 with a config generated in the test's temp dir (``nginx -p DIR -c
CONF``, no root needed), logging each request so the tests can count what a sync fetched.

Scenarios: full sync, incremental sync (nothing new: only the root probe and
timestamp.json are requested; a new version: only the changed roles and new targets; a
removed version: its files go), partial sync (``--include``, and a project included later
fetched with nothing new upstream), mirror of a mirror (synced from ``packman serve`` of
another mirror, trusting only root v1; a target tampered on the middle mirror is refused
and the last mirror stays byte-identical), export/import, and failover with the upstream
down, one mirror stalled and one malicious; and an ``s3://`` DEST on s3s-fs (which stores
each object as a file, so the bucket is read back as a directory).

Each resulting DEST is read, served by ``packman serve DEST``, by:
* python-tuf's ngclient, from root v1 in a fresh directory: every target it should hold;
* ``packman download --metadata-url``, from root v1 in a fresh state directory;
* pip: ``pip install --index-url http://…/simple/`` installs the newest wheel.

nginx is /usr/sbin/nginx (``.ci/run`` installs it); without it the module is skipped, or
fails when $CI is set. Binaries are taken from $PACKMAN_BIN_DIR (default:
<repo>/target/release).

Run: ``.venv/bin/python -m pytest tests/interop/test_mirror_servers.py -q``
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from skips import skip  # noqa: E402 (tests/interop is on sys.path: pytest's rootdir-less prepend)

sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))

from tufrepo import RepoServer  # noqa: E402
from tuf.ngclient import Updater  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
PACKMAN = BIN_DIR / "packman"
NGINX = Path("/usr/sbin/nginx")
TIMEOUT = 60
PROJECT, MODULE = "mirrortest-pkg", "mirrortest_pkg"
OTHER, OTHER_MODULE = "other-pkg", "other_pkg"


@pytest.fixture(scope="module", autouse=True)
def _tools_present():
    if not os.access(PACKMAN, os.X_OK):
        pytest.fail(f"missing {PACKMAN}: run `cargo build --release -p packman` or set PACKMAN_BIN_DIR",
                    pytrace=False)
    if not os.access(NGINX, os.X_OK):
        skip(f"{NGINX} not installed (Debian: apt-get install nginx-light; .ci/run installs it)")


_HOME: list[Path] = []


@pytest.fixture(autouse=True)
def _packman_home(tmp_path):
    """Each test's PACKMAN_HOME (mirror state, packman download's metadata), never the user's."""
    _HOME[:] = [tmp_path / "packman-home"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKMAN_", "PIP_"))}
    env["PACKMAN_HOME"] = os.fspath(_HOME[0])
    env["PIP_CONFIG_FILE"] = os.devnull  # no user or site pip configuration (extra indexes, proxies)
    return env


def run(*args, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [os.fspath(a) for a in args]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
                       env={**_env(), **(env or {})})
    if check:
        assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def packman(*args, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    return run(PACKMAN, *args, check=check, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(d: Path) -> dict[str, bytes]:
    """Every file under d (the served tree and anything else), by relative path."""
    return {os.fspath(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()} \
        if d.exists() else {}


def served_tree(d: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(d).items() if k.startswith(("metadata/", "targets/"))}


# ---- the upstream -------------------------------------------------------------------------

def build_wheel(out: Path, module: str, version: str) -> Path:
    """A pure-Python wheel (py3-none-any) whose module holds VERSION = version."""
    dist = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: packman-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
        for p, d in files.items())
    files[f"{dist}/RECORD"] = f"{record}{dist}/RECORD,,\n".encode()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return path


class Upstream:
    """A repository published with the packman CLI: a wheel of PROJECT (and optionally of
    OTHER) and a raw file docs/readme.txt."""

    def __init__(self, tmp: Path, other: bool = False):
        self.dir = tmp / "upstream"
        self.wheels = tmp / "wheels"
        packman("repo", "init", self.dir, "--bins", "16")
        self.root = self.dir / "metadata" / "1.root.json"
        self.add_wheel(MODULE, "1.0")
        if other:
            self.add_wheel(OTHER_MODULE, "1.0")
        readme = tmp / "readme.txt"
        readme.write_bytes(b"read me\n")
        packman("repo", "add", self.dir, "--raw", "--prefix", "docs/", readme)

    def add_wheel(self, module: str, version: str) -> Path:
        w = build_wheel(self.wheels, module, version)
        packman("repo", "add", self.dir, w)
        return w

    def targets(self) -> dict[str, bytes]:
        """{target path: bytes} of every target the upstream's current metadata lists, read
        from its tree (the test's oracle; the mirror's readers verify what they get)."""
        md = self.dir / "metadata"
        snap_v = json.loads((md / "timestamp.json").read_bytes())["signed"]["meta"]["snapshot.json"]["version"]
        out = {}
        for name, meta in json.loads((md / f"{snap_v}.snapshot.json").read_bytes())["signed"]["meta"].items():
            role = json.loads((md / f"{meta['version']}.{name}").read_bytes())["signed"]
            for path, info in role.get("targets", {}).items():
                out[path] = (self.dir / "targets" / hashed(path, info["hashes"]["sha256"])).read_bytes()
        return out

    def roles(self) -> set[str]:
        """metadata/N.ROLE.json of the current snapshot and every role it lists."""
        md = self.dir / "metadata"
        snap_v = json.loads((md / "timestamp.json").read_bytes())["signed"]["meta"]["snapshot.json"]["version"]
        meta = json.loads((md / f"{snap_v}.snapshot.json").read_bytes())["signed"]["meta"]
        return {f"metadata/{snap_v}.snapshot.json"} | {f"metadata/{m['version']}.{n}" for n, m in meta.items()}


def hashed(path: str, sha256: str) -> str:
    """A target's consistent-snapshot file name: DIR/SHA256.NAME."""
    d, _, name = path.rpartition("/")
    return f"{d}/{sha256}.{name}" if d else f"{sha256}.{name}"


# ---- servers ------------------------------------------------------------------------------

NGINX_CONF = """\
{user}daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
    log_format requests '$request_method $uri $status';
    access_log {tmp}/access.log requests;
    sendfile on;
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
        # What packman serve serves of a repository directory (keys/ and the publisher's
        # state are not published).
        location /metadata/ {{ }}
        location /targets/ {{ }}
        location / {{ return 404; }}
    }}
}}
"""


class Nginx:
    """nginx in the foreground, one process, serving `root`'s metadata/ and targets/."""

    def __init__(self, root: Path, tmp: Path):
        self.tmp = tmp
        tmp.mkdir(parents=True)
        port = free_port()
        # As root, nginx would switch to "nobody", who may not read the test's temp dir.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port, root=root))
        with open(tmp / "nginx.stderr", "wb") as err:
            self.proc = subprocess.Popen(
                [os.fspath(NGINX), "-p", os.fspath(tmp), "-c", os.fspath(tmp / "nginx.conf"), "-e",
                 os.fspath(tmp / "error.log")], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, f"nginx exited {self.proc.returncode}:\n{self.log_tail()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"nginx did not listen on {port}:\n{self.log_tail()}"
                time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"

    def log_tail(self) -> str:
        return "".join((self.tmp / f).read_text(errors="replace")[-2000:]
                       for f in ("nginx.stderr", "error.log") if (self.tmp / f).exists())

    def mark(self) -> int:
        log = self.tmp / "access.log"
        return log.stat().st_size if log.exists() else 0

    def requests(self, since: int) -> list[tuple[str, int]]:
        """(path, status) of each request logged after `since` (nginx logs a request when its
        response is complete, before the client sees the end of it)."""
        lines = (self.tmp / "access.log").read_bytes()[since:].decode().splitlines()
        return [(uri, int(status)) for _, uri, status in (line.split(" ") for line in lines)]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=TIMEOUT)


class Serve:
    """``packman serve DIR`` on a free port of 127.0.0.1, logging requests as JSON lines."""

    def __init__(self, directory: Path, tmp: Path):
        tmp.mkdir(parents=True, exist_ok=True)
        self.log = tmp / f"access-{directory.name}.log"
        self.proc = subprocess.Popen(
            [os.fspath(PACKMAN), "serve", os.fspath(directory), "--listen", "127.0.0.1:0", "--access-log",
             os.fspath(self.log)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=_env())
        first = self.proc.stdout.readline()
        assert " on http://" in first, first
        self.url = first.split(" on ", 1)[1].strip().rstrip("/")

    def _settled_size(self) -> int:
        # The log is written by a thread of its own: wait until it stops growing.
        size = lambda: self.log.stat().st_size if self.log.exists() else 0  # noqa: E731
        last = size()
        while True:
            time.sleep(0.1)
            if size() == last:
                return last
            last = size()

    def mark(self) -> int:
        return self._settled_size()

    def requests(self, since: int) -> list[tuple[str, int]]:
        self._settled_size()
        lines = self.log.read_bytes()[since:].split(b"\n")[:-1]
        return [(e["path"], int(e["status"])) for e in map(json.loads, lines)]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=TIMEOUT)


SERVERS = {"nginx": Nginx, "packman-serve": Serve}


class Stalled:
    """A mirror that serves metadata but stalls on every target: the status line and
    headers, then not a byte of the body (until closed)."""

    def __init__(self, directory: Path):
        release = self.release = threading.Event()
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if not self.path.startswith("/targets/"):
                    return super().do_GET()
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.flush()
                release.wait(TIMEOUT)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), lambda *a: Handler(*a, directory=os.fspath(directory)))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- the readers --------------------------------------------------------------------------

def read_with_ngclient(url: str, root: Path, paths: list[str], work: Path) -> dict[str, bytes]:
    """python-tuf's client from root v1 in a fresh directory: {path: bytes} of `paths`."""
    shutil.rmtree(work, ignore_errors=True)
    md, dl = work / "metadata", work / "targets"
    md.mkdir(parents=True)
    dl.mkdir()
    u = Updater(os.fspath(md), f"{url}/metadata/", os.fspath(dl), f"{url}/targets/", bootstrap=root.read_bytes())
    u.refresh()
    out = {}
    for path in paths:
        info = u.get_targetinfo(path)
        assert info is not None, f"python-tuf does not find {path} at {url}"
        got = u.download_target(info, os.fspath(dl / hashlib.sha256(path.encode()).hexdigest()))
        out[path] = Path(got).read_bytes()
    return out


def check_dest(dest: Path, upstream: Upstream, want: dict[str, bytes], tmp: Path, pip_version: str | None = "1.0",
               absent: tuple[str, ...] = ()) -> None:
    """DEST, served by ``packman serve``, is read by python-tuf, ``packman download`` and pip:
    every target of `want` has its bytes, `absent` are not found by python-tuf, and pip
    installs PROJECT==pip_version (the newest)."""
    # The upstream's exact bytes under the upstream's names, and nothing but the repository.
    assert sorted(p.name for p in dest.iterdir()) == ["metadata", "targets"], sorted(dest.iterdir())
    for rel, data in served_tree(dest).items():
        assert (upstream.dir / rel).read_bytes() == data, f"{rel} differs from the upstream's"
    assert (dest / "metadata" / "1.root.json").read_bytes() == upstream.root.read_bytes()

    served = Serve(dest, tmp)
    try:
        got = read_with_ngclient(served.url, upstream.root, sorted(want), tmp / "ng")
        assert got == want
        work = tmp / "ng-absent"
        shutil.rmtree(work, ignore_errors=True)
        (work / "md").mkdir(parents=True)
        u = Updater(os.fspath(work / "md"), f"{served.url}/metadata/", os.fspath(work), f"{served.url}/targets/",
                    bootstrap=upstream.root.read_bytes())
        u.refresh()
        for path in absent:
            assert u.get_targetinfo(path) is None, f"python-tuf still finds {path} on the mirror"

        # packman's client, one target per process (names in one directory would collide).
        for i, (path, data) in enumerate(sorted(want.items())):
            out = tmp / f"pm-download-{i}"
            shutil.rmtree(out, ignore_errors=True)
            packman("download", "--metadata-url", f"{served.url}/metadata/", "--root", upstream.root,
                    "--metadata-dir", tmp / "pm-metadata", "-d", out, path)
            assert (out / Path(path).name).read_bytes() == data, path

        if pip_version:
            target = tmp / "pip-target"
            shutil.rmtree(target, ignore_errors=True)
            run(sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-cache-dir",
                "--timeout", "10", "--only-binary=:all:", "--index-url", f"{served.url}/simple/", "--target", target,
                PROJECT)
            assert (target / MODULE / "__init__.py").read_text() == f"VERSION = {pip_version!r}\n"
    finally:
        served.close()


def sync(upstream_url: str, dest, *args, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    return packman("mirror", "sync", upstream_url, dest, *args, check=check, env=env)


# ---- scenarios ----------------------------------------------------------------------------

@pytest.mark.parametrize("server", sorted(SERVERS))
def test_full_incremental_and_gc_sync(tmp_path, server):
    up = Upstream(tmp_path)
    srv = SERVERS[server](up.dir, tmp_path / server)
    dest = tmp_path / "mirror"
    try:
        # Full sync: every target, the upstream's bytes.
        want = up.targets()
        assert f"packages/{PROJECT}/{MODULE}-1.0-py3-none-any.whl" in want
        sync(srv.url, dest, "--root", up.root)
        check_dest(dest, up, want, tmp_path / "read-1")

        # Nothing new upstream: only what the TUF workflow requires.
        mark = srv.mark()
        sync(srv.url, dest)
        assert srv.requests(mark) == [("/metadata/2.root.json", 404), ("/metadata/timestamp.json", 200)]

        # A new version: only the changed roles and the new targets are fetched.
        before = tree(up.dir)
        up.add_wheel(MODULE, "2.0")
        changed = {rel for rel, data in tree(up.dir).items()
                   if rel.startswith(("metadata/", "targets/")) and before.get(rel) != data}
        versioned = {f"/{rel}" for rel in changed if re.match(r"metadata/\d+\.", rel)}
        hashed = {f"/{rel}" for rel in changed if re.match(r"targets/(.*/)?[0-9a-f]{64}\.", rel)}
        assert versioned and hashed, changed
        mark = srv.mark()
        sync(srv.url, dest)
        got = srv.requests(mark)
        assert all(status == 200 for path, status in got if path != "/metadata/2.root.json"), got
        assert sorted(p for p, _ in got) == sorted({"/metadata/2.root.json", "/metadata/timestamp.json"} | versioned
                                                    | hashed), got
        want = up.targets()
        check_dest(dest, up, want, tmp_path / "read-2", pip_version="2.0")

        # A version removed upstream is removed here (its hashed files), whatever the upstream
        # still keeps on disk.
        old = f"packages/{PROJECT}/{MODULE}-1.0-py3-none-any.whl"
        old_hashed = [p for p in (dest / "targets" / "packages" / PROJECT).iterdir()
                      if p.name.endswith(f".{MODULE}-1.0-py3-none-any.whl")]
        assert old_hashed
        packman("repo", "remove", up.dir, f"{MODULE}-1.0-py3-none-any.whl")
        out = sync(srv.url, dest).stdout
        assert not any(p.exists() for p in old_hashed), out
        want = up.targets()
        assert old not in want
        check_dest(dest, up, want, tmp_path / "read-3", pip_version="2.0", absent=(old,))
    finally:
        srv.close()


def test_partial_sync_and_a_project_included_later(tmp_path):
    up = Upstream(tmp_path, other=True)
    srv = Nginx(up.dir, tmp_path / "nginx")
    dest = tmp_path / "mirror"
    try:
        every = up.targets()
        other = {p for p in every if p.startswith((f"packages/{OTHER}/", f"simple/{OTHER}/"))}
        assert other
        sync(srv.url, dest, "--root", up.root, "--include", PROJECT)
        kept = {p: d for p, d in every.items() if p not in other}
        assert any(p.startswith(f"packages/{PROJECT}/") for p in kept)
        check_dest(dest, up, kept, tmp_path / "read-1")
        files = served_tree(dest)
        for p in other:
            assert f"targets/{hashed(p, hashlib.sha256(every[p]).hexdigest())}" not in files, p
            assert f"targets/{p}" not in files, p
        # Metadata is mirrored whole: OTHER's bin is there too.
        assert up.roles() <= files.keys(), up.roles() - files.keys()

        # OTHER included later, nothing new upstream: fetched now, and only its files.
        mark = srv.mark()
        sync(srv.url, dest, "--include", PROJECT, "--include", OTHER)
        got = [p for p, _ in srv.requests(mark)]
        assert sorted(p for p in got if p.startswith("/targets/")) == sorted(
            f"/targets/{hashed(p, hashlib.sha256(every[p]).hexdigest())}" for p in other), got
        check_dest(dest, up, every, tmp_path / "read-2")
    finally:
        srv.close()


def test_mirror_of_a_mirror_trusts_only_the_root(tmp_path):
    up = Upstream(tmp_path)
    srv = Nginx(up.dir, tmp_path / "nginx")
    first, second = tmp_path / "mirror-1", tmp_path / "mirror-2"
    try:
        sync(srv.url, first, "--root", up.root)
        middle = Serve(first, tmp_path / "serve-1")
        try:
            sync(middle.url, second, "--root", up.root)
            assert served_tree(second) == served_tree(first)
            check_dest(second, up, up.targets(), tmp_path / "read-1")

            # The middle mirror serves a tampered new wheel: the last mirror refuses it and
            # stays byte-identical, naming the file.
            wheel = up.add_wheel(MODULE, "2.0")
            sync(srv.url, first)
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            hashed = first / "targets" / "packages" / PROJECT / f"{digest}.{wheel.name}"
            data = bytearray(hashed.read_bytes())
            data[10] ^= 1
            hashed.unlink()  # a new inode: the plain hard link keeps the good bytes
            hashed.write_bytes(bytes(data))
            state = tree(second)
            p = sync(middle.url, second, check=False)
            assert p.returncode == 1, p
            assert f"{digest}.{wheel.name}" in p.stderr, p.stderr
            assert tree(second) == state

            # Repaired on the middle mirror (nothing new upstream: --full checks every target
            # and fetches the lost one), the next sync goes through.
            hashed.unlink()
            assert "nothing new upstream" in sync(srv.url, first).stdout
            assert not hashed.exists()
            sync(srv.url, first, "--full")
            assert hashed.read_bytes() == wheel.read_bytes()
            sync(middle.url, second)
            check_dest(second, up, up.targets(), tmp_path / "read-2", pip_version="2.0")
        finally:
            middle.close()
    finally:
        srv.close()


def test_export_import_of_a_mirror_synced_from_nginx(tmp_path):
    up = Upstream(tmp_path)
    srv = Nginx(up.dir, tmp_path / "nginx")
    online, offline = tmp_path / "online", tmp_path / "offline"
    try:
        sync(srv.url, online, "--root", up.root)
        packman("mirror", "export", online, tmp_path / "full.bundle")
        packman("mirror", "import", tmp_path / "full.bundle", offline, "--root", up.root)
        check_dest(offline, up, up.targets(), tmp_path / "read-1")
        since = json.loads((offline / "metadata" / "timestamp.json").read_bytes())["signed"]["meta"][
            "snapshot.json"]["version"]
        up.add_wheel(MODULE, "2.0")
        sync(srv.url, online)
        packman("mirror", "export", online, tmp_path / "inc.bundle", "--since", str(since))
        packman("mirror", "import", tmp_path / "inc.bundle", offline)
        assert served_tree(offline) == served_tree(online)
        check_dest(offline, up, up.targets(), tmp_path / "read-2", pip_version="2.0")
    finally:
        srv.close()


def test_failover_with_the_upstream_down_a_mirror_stalled_and_one_malicious(tmp_path):
    up = Upstream(tmp_path)
    want = up.targets()
    wheel = f"packages/{PROJECT}/{MODULE}-1.0-py3-none-any.whl"
    digest = hashlib.sha256(want[wheel]).hexdigest()
    evil = tmp_path / "evil"
    shutil.copytree(up.dir, evil)
    hashed = evil / "targets" / "packages" / PROJECT / f"{digest}.{MODULE}-1.0-py3-none-any.whl"
    hashed.write_bytes(b"X" * hashed.stat().st_size)  # same length, other bytes
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens
    stalled, malicious, good = Stalled(up.dir), RepoServer(evil), Nginx(up.dir, tmp_path / "nginx")
    dest = tmp_path / "mirror"
    try:
        mirrors = [arg for m in (stalled, malicious, good) for arg in ("--mirror", f"{m.url}/metadata/,{m.url}/targets/")]
        t0 = time.monotonic()
        p = sync(down, dest, "--root", up.root, "--timeout", "2", "--json", *mirrors)
        took = time.monotonic() - t0
        report = json.loads(p.stdout)
        failures = report["mirror_failures"]
        kinds = {(f["mirror"], f["kind"]) for f in failures}
        assert (f"{down}/metadata/", "unreachable") in kinds, failures
        assert (f"{stalled.url}/metadata/", "too slow (stalled or below the minimum speed)") in kinds, failures
        bad = [f for f in failures if f["mirror"] == f"{malicious.url}/metadata/"]
        assert [(f["kind"], f["url"]) for f in bad] == [
            ("served bytes that failed verification", f"{malicious.url}/{hashed.relative_to(evil)}")], failures
        assert stalled.hits, "the stalled mirror was never asked for a target"
        # The stalled mirror's targets time out together (parallel downloads), not one by one
        # (7 targets x 2 s would be 14 s; the bound leaves room for a loaded machine).
        assert len(want) >= 6 and took < 10, (len(want), took)
        assert report["fetched"] == len(want), report
        check_dest(dest, up, want, tmp_path / "read")
    finally:
        stalled.close()
        malicious.close()
        good.close()


def test_s3_dest_receives_only_verified_files_and_a_refused_sync_leaves_the_bucket_untouched(tmp_path):
    s3s = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
    if not os.access(s3s, os.X_OK):
        skip("s3s-fs not installed (cargo install s3s-fs --features binary; .ci/run installs it)")
    up = Upstream(tmp_path)
    srv = Nginx(up.dir, tmp_path / "nginx")
    store = tmp_path / "s3"
    (store / "bucket").mkdir(parents=True)
    port = free_port()
    s3 = subprocess.Popen([s3s, "--host", "127.0.0.1", "--port", str(port), "--access-key", "packman",
                           "--secret-key", "packman-secret", os.fspath(store)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    aws = {"AWS_ACCESS_KEY_ID": "packman", "AWS_SECRET_ACCESS_KEY": "packman-secret", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}
    bucket = store / "bucket" / "mirror"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and s3.poll() is None, "s3s-fs did not start"
                time.sleep(0.05)
        out = sync(srv.url, "s3://bucket/mirror", "--root", up.root, env=aws).stdout
        assert "pushed to s3://bucket/mirror" in out, out
        check_dest(bucket, up, up.targets(), tmp_path / "read-1")

        up.add_wheel(MODULE, "2.0")
        sync(srv.url, "s3://bucket/mirror", env=aws)
        check_dest(bucket, up, up.targets(), tmp_path / "read-2", pip_version="2.0")

        # A tampered new wheel upstream: refused, nothing pushed.
        wheel = up.add_wheel(MODULE, "3.0")
        hashed_wheel = up.dir / "targets" / "packages" / PROJECT / \
            f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}.{wheel.name}"
        data = bytearray(hashed_wheel.read_bytes())
        data[10] ^= 1
        hashed_wheel.unlink()
        hashed_wheel.write_bytes(bytes(data))
        before = tree(store)
        p = sync(srv.url, "s3://bucket/mirror", env=aws, check=False)
        assert p.returncode == 1 and wheel.name in p.stderr, p
        assert "pushed" not in p.stdout, p.stdout
        assert tree(store) == before
    finally:
        s3.terminate()
        s3.wait(timeout=TIMEOUT)
        srv.close()
