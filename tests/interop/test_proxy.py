"""Real pip and uv install through ``packman proxy`` and ``packman install``, and a tampering host
makes them fail with nothing installed.

The repository of ``test_pip_uv.py`` (requests and its four dependencies, published with
``packman repo init`` / ``packman repo add``) is served by ``packman serve`` on 127.0.0.1. A
packman home (PACKMAN_HOME) trusts it in its ring: ``config.toml`` written here and the
repository's first root pinned as the ring's trusted root, as ``packman trust add`` does. Then:

* ``packman proxy`` (a subprocess) refreshes the repository itself and pip and uv resolve and
  install requests with its dependencies from the proxy's ``/simple/`` alone; every file came
  through the proxy, which fetched it from packman serve;
* ``packman install requests`` into a fresh venv works with uv and with pip, and names each
  file and its repository;
* a host that swaps the idna wheel *and* rewrites idna's page to the new wheel's hash (the
  files packman serve sends, edited on disk) makes pip, uv and ``packman install`` fail,
  with packman's message and nothing installed.

Run: ``PACKMAN_BIN_DIR=target/release .venv/bin/python -m pytest tests/interop -q -k proxy``
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from test_pip_uv import (  # noqa: F401  (fixtures are used by name)
    MODULES, PACKMAN, PINS, TAMPERED, Served, _env, _uv, assert_installed, assert_nothing_installed, pip_install,
    repo_dir, run, sha256, show, uv_install, wheels,
)
# Importing test_pip_uv checks the platform its pinned wheels need (a skip, or under CI a failure).


def home_trusting(home: Path, served: Served, repo: Path) -> Path:
    """A packman home whose ring trusts `repo` at `served`'s URL for every project."""
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(
        f'[[repository]]\nname = "main"\nurl = "{served.url}"\nprojects = ["*"]\n')
    meta = home / "ring" / "main" / "metadata"
    meta.mkdir(parents=True)
    shutil.copyfile(repo / "metadata" / "1.root.json", meta / "root.json")
    return home


def packman_env(home: Path) -> dict[str, str]:
    env = _env()
    env["PACKMAN_HOME"] = os.fspath(home)
    return env


class Proxy:
    """``packman proxy --listen 127.0.0.1:0`` with PACKMAN_HOME=home."""

    def __init__(self, home: Path):
        self.stderr_path = home / "proxy.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([os.fspath(PACKMAN), "proxy", "--listen", "127.0.0.1:0"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                         env=packman_env(home))
        started = time.monotonic()
        try:
            line = self._first_line(deadline=started + 15)
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        self.startup = time.monotonic() - started
        m = re.fullmatch(r"packman proxy on (http://127\.0\.0\.1:\d+/simple/)", line)
        assert m, f"unexpected first line from packman proxy: {line!r}"
        self.index_url = m[1]

    def _first_line(self, deadline: float) -> str:
        fd, data = self.proc.stdout.fileno(), b""
        while b"\n" not in data:
            left = deadline - time.monotonic()
            assert left > 0, f"packman proxy printed no address in time; stdout so far: {data!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                assert chunk, f"packman proxy exited ({self.proc.wait()}):\n{self.stderr_path.read_text()}"
                data += chunk
        return data.split(b"\n", 1)[0].decode()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            pytest.fail("packman proxy did not stop within 20 s of SIGTERM", pytrace=False)
        assert self.proc.returncode == 0, f"packman proxy exited {self.proc.returncode}:\n{self.stderr()}"


@pytest.fixture(scope="module")
def origin(repo_dir, tmp_path_factory):
    s = Served(repo_dir, tmp_path_factory.mktemp("proxy-origin"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def proxy_home(origin, repo_dir, tmp_path_factory) -> Path:
    return home_trusting(tmp_path_factory.mktemp("proxy-home") / "home", origin, repo_dir)


@pytest.fixture(scope="module")
def proxy(proxy_home):
    p = Proxy(proxy_home)
    p.home = proxy_home
    yield p
    p.stop()


@pytest.fixture(scope="module")
def tampering_host(repo_dir, wheels, tmp_path_factory):
    """A copy of the repository whose host swapped the idna wheel and rewrote idna's signed-for
    page to the new wheel's hash and size: the files at the URLs the signed metadata names."""
    d = tmp_path_factory.mktemp("proxy-tampered") / "repo"
    shutil.copytree(repo_dir, d)
    wheel = wheels[TAMPERED]
    good = PINS[TAMPERED][1]
    pkg_dir = d / "targets" / "packages" / TAMPERED
    evil = bytearray(wheel.read_bytes())
    evil[10] ^= 0x01  # a zip member's mtime: still a valid wheel that installs
    for name in (wheel.name, f"{good}.{wheel.name}"):
        (pkg_dir / name).write_bytes(evil)
    with zipfile.ZipFile(pkg_dir / wheel.name) as z:
        assert z.testzip() is None
    bad = sha256(pkg_dir / wheel.name)
    page_dir = d / "targets" / "simple" / TAMPERED
    pages = [p for p in page_dir.iterdir() if p.name.endswith("index.json")]
    assert len(pages) >= 2, pages  # the plain page and its hash-prefixed copy
    for page in pages:
        doc = json.loads(page.read_text())
        for f in doc["files"]:
            if f["filename"] == wheel.name:
                f["hashes"]["sha256"] = bad
        page.write_text(json.dumps(doc))
    s = Served(d, tmp_path_factory.mktemp("serve-proxy-tampered"))
    s.bad = bad
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tampered_proxy(tampering_host, repo_dir, tmp_path_factory):
    home = home_trusting(tmp_path_factory.mktemp("proxy-home-tampered") / "home", tampering_host, repo_dir)
    p = Proxy(home)
    p.home = home
    yield p
    p.stop()


INSTALLERS = {"pip": pip_install, "uv": uv_install}


def wait_for_file(path: Path, timeout: float = 10) -> bytes:
    """The bytes of `path` once it exists: the proxy answers as soon as a file is verified
    and renames it into its cache just behind (made durable first)."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return path.read_bytes()


@pytest.fixture(scope="module")
def squatter(tmp_path_factory):
    """A second trusted repository ("public") that squats names: idna 99.0 (a dependency of
    requests, at a version pip and uv would prefer), acme-evil (a name the ring routes to
    main, which lacks it), and public-only, which the ring routes to it (the control)."""
    from test_crash_consistency import wheel  # a small pure-Python wheel with a valid RECORD

    base = tmp_path_factory.mktemp("squatter")
    src, d = base / "src", base / "repo"
    src.mkdir()
    run([PACKMAN, "repo", "init", d])
    p = run([PACKMAN, "repo", "add", d, wheel(src, "idna", "99.0"), wheel(src, "acme-evil", "1.0"),
             wheel(src, "public-only", "1.0")])
    assert p.returncode == 0, show(p)
    s = Served(d, base / "serve")
    s.dir = d
    yield s
    s.stop()


@pytest.fixture(scope="module")
def routed_proxy(origin, repo_dir, squatter, tmp_path_factory):
    """A proxy whose ring has main (requests and its dependencies, and every acme-* name)
    first, then public for everything else."""
    home = tmp_path_factory.mktemp("proxy-home-routed") / "home"
    (home / "config").mkdir(parents=True)
    main = ", ".join(f'"{n}"' for n in ["acme-*", *sorted(PINS)])
    (home / "config" / "config.toml").write_text(
        f'[[repository]]\nname = "main"\nurl = "{origin.url}"\nprojects = [{main}]\n\n'
        f'[[repository]]\nname = "public"\nurl = "{squatter.url}"\nprojects = ["*"]\n')
    for name, repo in (("main", repo_dir), ("public", squatter.dir)):
        meta = home / "ring" / name / "metadata"
        meta.mkdir(parents=True)
        shutil.copyfile(repo / "metadata" / "1.root.json", meta / "root.json")
    p = Proxy(home)
    p.home = home
    yield p
    p.stop()


# ---- tests --------------------------------------------------------------------------------

@pytest.mark.parametrize("tool", INSTALLERS)
def test_pip_and_uv_install_requests_through_the_proxy(tool, proxy, origin, wheels, tmp_path):
    assert proxy.startup < 10, f"the proxy took {proxy.startup:.1f} s to answer"
    since = origin.mark()
    target = tmp_path / "target"
    p = INSTALLERS[tool](target, "--index-url", proxy.index_url, "requests")
    assert p.returncode == 0, show(p) + proxy.stderr()
    assert_installed(target)
    # Every byte came from packman serve through the proxy's updater (not from pip or uv),
    # and each wheel sits verified in the proxy's cache under its signed sha256.
    assert all(not (e.get("ua") or "").startswith((tool, "pip/")) for e in origin.entries(since))
    assert "packman:" not in proxy.stderr(), proxy.stderr()
    cache = proxy.home / "cache" / "files"
    for project, wheel in wheels.items():
        assert wait_for_file(cache / PINS[project][1]) == wheel.read_bytes(), project


def test_the_project_list_comes_from_the_signed_one(proxy):
    req = urllib.request.Request(proxy.index_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
        names = [p["name"] for p in json.load(r)["projects"]]
    assert names == sorted(PINS), names


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_packman_install_into_a_fresh_venv(tool, origin, repo_dir, tmp_path):
    # A home of its own: a running `packman proxy` holds its repositories' metadata.
    proxy_home = home_trusting(tmp_path / "home", origin, repo_dir)
    venv = tmp_path / "venv"
    p = run([sys.executable, "-m", "venv", *(["--without-pip"] if tool == "uv" else []), venv], timeout=120)
    assert p.returncode == 0, show(p)
    env = packman_env(proxy_home)
    env["PATH"] = os.pathsep.join([os.fspath(Path(_uv()[0]).parent), env.get("PATH", "")])
    p = run([PACKMAN, "install", "--python", venv / "bin" / "python", "--installer", tool, "requests"], env=env,
            timeout=180)
    assert p.returncode == 0, show(p)
    for project in PINS:
        assert re.search(rf"{project.replace('-', '_')}-{re.escape(PINS[project][0])}-\S+\.whl: from repository main "
                         rf"\(sha256 {PINS[project][1]}", p.stdout, re.I), show(p)
    if tool == "uv":
        # --json, into a second environment: each installed file with its repository and hash.
        venv2 = tmp_path / "venv2"
        assert run([sys.executable, "-m", "venv", "--without-pip", venv2], timeout=120).returncode == 0
        p = run([PACKMAN, "install", "--json", "--python", venv2 / "bin" / "python", "--installer", tool, "requests"],
                env=env, timeout=180)
        assert p.returncode == 0, show(p)
        v = json.loads(p.stdout)
        assert v["ok"] is True and v["refused"] == [], v
        got = {f["sha256"] for f in v["installed"] if f["repository"] == "main"}
        assert {PINS[project][1] for project in PINS} <= got, v
    check = run([venv / "bin" / "python", "-c", "import requests, idna; print(requests.__version__)"])
    assert check.returncode == 0 and check.stdout.strip() == PINS["requests"][0], show(check)


@pytest.mark.parametrize("tool", INSTALLERS)
def test_a_name_in_two_repositories_comes_only_from_the_one_the_ring_routes_it_to(tool, routed_proxy, tmp_path):
    """Dependency confusion, with the real installers: public serves idna 99.0, which pip's
    --extra-index-url would take (the highest version anywhere); through the proxy, idna
    comes from main only. acme-evil, routed to main, which lacks it, is a 404 saying so,
    never public's copy."""
    target = tmp_path / "target"
    p = INSTALLERS[tool](target, "--index-url", routed_proxy.index_url, "requests")
    assert p.returncode == 0, show(p) + routed_proxy.stderr()
    assert_installed(target)  # idna at main's pinned version, not 99.0
    assert not list(target.glob("idna-99.0*")), sorted(os.listdir(target))

    evil = tmp_path / "evil"
    p = INSTALLERS[tool](evil, "--index-url", routed_proxy.index_url, "acme-evil")
    assert p.returncode != 0, show(p)
    assert not evil.exists() or not [n for n in os.listdir(evil) if n.startswith("acme_evil")], os.listdir(evil)
    try:
        urllib.request.urlopen(routed_proxy.index_url + "acme-evil/", timeout=30)
        pytest.fail("the proxy served acme-evil")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        assert e.code == 404 and 'belongs to repository "main"' in body, (e.code, body)

    # The control: a name the ring routes to public installs from it.
    ok = tmp_path / "ok"
    p = INSTALLERS[tool](ok, "--index-url", routed_proxy.index_url, "public-only")
    assert p.returncode == 0, show(p) + routed_proxy.stderr()
    assert (ok / "public_only" / "__init__.py").is_file(), sorted(os.listdir(ok))


@pytest.mark.parametrize("tool", INSTALLERS)
def test_a_swapped_wheel_with_a_rewritten_page_fails_the_install(tool, tampered_proxy, tampering_host, tmp_path):
    target = tmp_path / "target"
    p = INSTALLERS[tool](target, "--index-url", tampered_proxy.index_url, "requests")
    assert p.returncode != 0, show(p)
    assert_nothing_installed(target)
    # The proxy refused idna's page (it does not match the signed hash) and said why.
    err = tampered_proxy.stderr()
    assert f'packman: /simple/{TAMPERED}/: repository "main": target "simple/{TAMPERED}/index.json"' in err, err
    assert tampering_host.url in err, err
    out = p.stdout + p.stderr
    assert "502" in out or TAMPERED in out, show(p)
    # Nothing of the attacker's reached the proxy's cache.
    cache = tampered_proxy.home / "cache" / "files"
    assert tampering_host.bad not in os.listdir(cache)


def test_packman_install_refuses_and_installs_nothing(tampering_host, repo_dir, tmp_path):
    home = home_trusting(tmp_path / "home", tampering_host, repo_dir)
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120).returncode == 0
    env = packman_env(home)
    env["PATH"] = os.pathsep.join([os.fspath(Path(_uv()[0]).parent), env.get("PATH", "")])
    p = run([PACKMAN, "install", "--python", venv / "bin" / "python", "--installer", "uv", "requests"], env=env,
            timeout=180)
    assert p.returncode != 0, show(p)
    assert "packman: error: uv failed" in p.stderr and "packman refused" in p.stderr, show(p)
    assert f'target "simple/{TAMPERED}/index.json"' in p.stderr, show(p)
    # --json: the same refusal on stdout, which holds nothing but the JSON.
    p = run([PACKMAN, "install", "--json", "--python", venv / "bin" / "python", "--installer", "uv", "requests"],
            env=env, timeout=180)
    assert p.returncode != 0, show(p)
    v = json.loads(p.stdout)
    assert v["ok"] is False and v["installer"] == "uv" and v["requirements"] == ["requests"], v
    assert any(f'target "simple/{TAMPERED}/index.json"' in r for r in v["refused"]), v
    check = run([venv / "bin" / "python", "-c", "import requests"])
    assert check.returncode != 0, show(check)
    listed = run([_uv()[0], "pip", "list", "--python", venv / "bin" / "python"])
    assert "requests" not in listed.stdout and TAMPERED not in listed.stdout, show(listed)
