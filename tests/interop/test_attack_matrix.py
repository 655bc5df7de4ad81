"""Every attack of the one malicious repository (``packman-attack-server``, the binary of
crates/packman-attacks) against the surfaces a person installs through: pip and uv through
``packman proxy``, and ``packman install``. crates/packman/tests/attack_matrix.rs runs the same
attacks against ``packman download``, ``mirror sync`` and the proxy's HTTP answers.

Each case: a packman home trusts the repository at S2 (``packman trust add --root``), the
repository publishes S3 (project ``gamma`` added) and performs the attack, and the installer
asks for ``gamma``. It must fail, install nothing, name the attack (the words the server's
``expect`` command gives, the same on every surface), and leave the home's trusted state
byte-identical (but for the one file a client may persist while refusing, with the attacker's
exact bytes, or, for an attack on a target, the genuine new metadata); every file in the
proxy's cache is named by its own sha256. A control installs ``gamma`` from the genuine S3.
And with a good mirror configured beside the tampering host, each installer gets the signed
bytes, and packman names the host that failed and how.

Run: ``cargo build --release -p packman -p packman-attacks`` then
``PACKMAN_BIN_DIR=target/release .venv/bin/python -m pytest tests/interop/test_attack_matrix.py -q``
"""

from __future__ import annotations

import hashlib
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_pip_uv import BIN_DIR, PACKMAN, _env, _uv, run, show
from test_proxy import Proxy, packman_env

ATTACK_SERVER = BIN_DIR / "packman-attack-server"
ATTACKS = ["tampered-target", "page-rewritten", "rollback-timestamp", "rollback-snapshot", "rollback-bin",
           "rollback-targets", "rollback-root", "freeze",
           "mix-and-match", "endless-data",
           "endless-snapshot", "endless-target", "slow-retrieval", "threshold-not-met", "forged-key", "revoked-key",
           "root-gap", "root-without-rotation", "bin-outside-delegation"]


# Without retries: a 502 from the proxy is final (it failed over already), and pip's 5 and
# uv's 3 retries with backoff would only repeat each refusal (as `packman install` knows too).
def pip_install(target: Path, *args) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--retries", "0",
                "--no-cache-dir", "--timeout", "10", "--only-binary=:all:", "--target", target, *args])


def uv_install(target: Path, *args) -> subprocess.CompletedProcess:
    env = _env()
    env["UV_HTTP_RETRIES"] = "0"
    return run([*_uv(), "pip", "install", "--no-config", "--no-cache", "--only-binary", ":all:",
                "--python", sys.executable, "--target", target, *args], env=env)


INSTALLERS = {"pip": pip_install, "uv": uv_install}


class AttackServer:
    """``packman-attack-server DIR``, driven through its stdin."""

    def __init__(self, directory: Path):
        if not os.access(ATTACK_SERVER, os.X_OK):
            pytest.fail(f"missing {ATTACK_SERVER}: cargo build --release -p packman-attacks", pytrace=False)
        self.dir = directory
        self.proc = subprocess.Popen([os.fspath(ATTACK_SERVER), os.fspath(directory)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("url "), line
        self.url = line[4:]
        self.root = directory / "metadata" / "1.root.json"

    def cmd(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        assert reply == "ok" or reply.startswith("ok "), f"{line}: {reply}"
        return reply[3:]

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def trusted_state(home: Path) -> dict[str, bytes]:
    """Every file of the home but the cache of verified files and the proxy's log."""
    out = {}
    for p in home.rglob("*"):
        rel = p.relative_to(home).as_posix()
        if p.is_file() and not rel.startswith("cache/") and rel != "proxy.stderr":
            out[rel] = p.read_bytes()
    return out


def assert_cache_verified(home: Path) -> None:
    files = home / "cache" / "files"
    for p in files.iterdir() if files.exists() else []:
        assert not p.name.startswith(".tmp"), f"temp file {p} left in the cache"
        if not p.name.startswith("."):
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name, f"{p} does not hold the bytes it names"


def assert_named(text: str, groups: list[list[str]], what: str) -> None:
    for group in groups:
        assert any(w in text for w in group), f"{what} must name the attack ({group}):\n{text}"


def assert_unchanged(before: dict, after: dict, persisted: str | None, served: AttackServer, attack: str) -> None:
    genuine = {p.read_bytes() for p in (served.dir / "metadata").iterdir()}
    target_attack = attack in ("tampered-target", "page-rewritten", "bin-outside-delegation", "endless-target")
    for k in sorted(set(before) | set(after)):
        if before.get(k) == after.get(k):
            continue
        if persisted and (k == persisted or k.endswith("/" + persisted)):
            continue  # its bytes were verified by the trust core (a signed timestamp)
        if target_attack and (after.get(k) in genuine or k.endswith("/state.json")):
            continue  # the genuine new metadata, verified, and the record of that refresh
        pytest.fail(f"{k} changed in the trusted state under {attack}")


@pytest.fixture(scope="module")
def empty_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("attack-venv") / "venv"
    p = run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120)
    assert p.returncode == 0, show(p)
    return venv


def trust_at_s2(home: Path, served: AttackServer) -> None:
    p = run([PACKMAN, "trust", "add", "up", served.url, "--root", served.root], env=packman_env(home))
    assert p.returncode == 0, show(p)


def install_env(home: Path) -> dict[str, str]:
    env = packman_env(home)
    env["PATH"] = os.pathsep.join([os.fspath(Path(_uv()[0]).parent), env.get("PATH", "")])
    return env


def venv_has_gamma(venv: Path) -> bool:
    return run([venv / "bin" / "python", "-c", "import gamma"]).returncode == 0


def test_the_server_lists_exactly_these_attacks(tmp_path):
    s = AttackServer(tmp_path / "up")
    try:
        assert s.cmd("list").split() == ATTACKS + ["fast-forward"]
    finally:
        s.stop()


def test_controls_install_gamma_through_every_installer(tmp_path):
    s = AttackServer(tmp_path / "up")
    try:
        homes = {tool: tmp_path / f"home-{tool}" for tool in [*INSTALLERS, "install"]}
        for home in homes.values():
            trust_at_s2(home, s)
        s.cmd("advance")
        for tool, installer in INSTALLERS.items():
            proxy = Proxy(homes[tool])
            try:
                p = installer(tmp_path / f"target-{tool}", "--index-url", proxy.index_url, "gamma")
            finally:
                proxy.stop()
            assert p.returncode == 0, show(p) + proxy.stderr()
            assert (tmp_path / f"target-{tool}" / "gamma" / "__init__.py").exists()
        venv = tmp_path / "venv"
        assert run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120).returncode == 0
        p = run([PACKMAN, "install", "--python", venv / "bin" / "python", "--installer", "uv", "gamma"],
                env=install_env(homes["install"]), timeout=180)
        assert p.returncode == 0, show(p)
        assert venv_has_gamma(venv)
    finally:
        s.stop()


@pytest.mark.parametrize("attack", ATTACKS)
def test_every_installer_refuses_the_attack(attack, empty_venv, tmp_path):
    s = AttackServer(tmp_path / "up")
    try:
        homes = {tool: tmp_path / f"home-{tool}" for tool in [*INSTALLERS, "install"]}
        for home in homes.values():
            trust_at_s2(home, s)
        before = {tool: trusted_state(home) for tool, home in homes.items()}
        s.cmd("advance")
        armed = s.cmd(f"arm {attack}")
        persisted = armed.split()[1] if armed.startswith("persisted ") else None
        words = json.loads(s.cmd(f"expect {attack}"))

        for tool, installer in INSTALLERS.items():
            proxy = Proxy(homes[tool])
            target = tmp_path / f"target-{tool}"
            try:
                p = installer(target, "--index-url", proxy.index_url, "gamma")
            finally:
                proxy.stop()
            assert p.returncode != 0, show(p)
            assert not (target / "gamma").exists(), f"{tool} installed gamma under {attack}"
            assert_named(proxy.stderr(), words, f"the proxy serving {tool}")
            assert_unchanged(before[tool], trusted_state(homes[tool]), persisted, s, attack)
            assert_cache_verified(homes[tool])

        p = run([PACKMAN, "install", "--python", empty_venv / "bin" / "python", "--installer", "uv", "gamma"],
                env=install_env(homes["install"]), timeout=180)
        assert p.returncode == 1, show(p)
        assert_named(p.stderr, words, "packman install")
        assert not venv_has_gamma(empty_venv), f"packman install installed gamma under {attack}"
        assert_unchanged(before["install"], trusted_state(homes["install"]), persisted, s, attack)
        assert_cache_verified(homes["install"])
    finally:
        s.stop()


@pytest.mark.parametrize("tool", [*INSTALLERS, "install"])
def test_a_tampering_host_is_failed_over_to_a_good_mirror(tool, tmp_path):
    """The repository's own host serves a tampered wheel; a mirror of it (``packman serve`` of
    the same published tree, configured with ``trust add --mirror``) serves the right one.
    pip, uv and ``packman install`` get the right bytes, and packman says which host failed
    and how."""
    s = AttackServer(tmp_path / "up")
    serve = None
    try:
        home = tmp_path / "home"
        serve = subprocess.Popen([os.fspath(PACKMAN), "serve", os.fspath(s.dir), "--listen", "127.0.0.1:0"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 env=_env())
        line = serve.stdout.readline()
        mirror = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert mirror, line
        mirror = mirror[0]
        p = run([PACKMAN, "trust", "add", "up", s.url, "--root", s.root,
                 "--mirror", f"{mirror}/metadata/,{mirror}/targets/"], env=packman_env(home))
        assert p.returncode == 0, show(p)
        s.cmd("advance")
        s.cmd("arm tampered-target")
        wheel = next((s.dir / "targets" / "packages" / "gamma").glob("*.gamma-1.0-py3-none-any.whl"))
        if tool == "install":
            venv = tmp_path / "venv"
            assert run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120).returncode == 0
            p = run([PACKMAN, "install", "--python", venv / "bin" / "python", "--installer", "uv", "gamma"],
                    env=install_env(home), timeout=180)
            assert p.returncode == 0, show(p)
            assert venv_has_gamma(venv)
            report = p.stderr
        else:
            proxy = Proxy(home)
            try:
                p = INSTALLERS[tool](tmp_path / "target", "--index-url", proxy.index_url, "gamma")
            finally:
                proxy.stop()
            assert p.returncode == 0, show(p) + proxy.stderr()
            assert (tmp_path / "target" / "gamma" / "__init__.py").exists()
            report = proxy.stderr()
        # The cache holds the mirror's bytes, which are the signed ones.
        assert (home / "cache" / "files" / wheel.name.split(".", 1)[0]).read_bytes() == wheel.read_bytes()
        assert s.url in report and "the signed hash is" in report, report
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=20)
        s.stop()


def test_every_installer_recovers_from_a_fast_forward_after_a_timestamp_key_rotation(tmp_path):
    """A fast-forward (a validly signed timestamp a thousand versions ahead) is taken; once the
    repository rotates its timestamp key and publishes at a lower version, pip, uv and
    ``packman install`` install what it published after (spec 5.3.11)."""
    s = AttackServer(tmp_path / "up")
    try:
        homes = {tool: tmp_path / f"home-{tool}" for tool in [*INSTALLERS, "install"]}
        for home in homes.values():
            trust_at_s2(home, s)
        s.cmd("advance")
        s.cmd("arm fast-forward")

        def install_all(project: str, phase: str) -> None:
            for tool, installer in INSTALLERS.items():
                proxy = Proxy(homes[tool])
                try:
                    p = installer(tmp_path / f"target-{tool}-{phase}", "--index-url", proxy.index_url, project)
                finally:
                    proxy.stop()
                assert p.returncode == 0, show(p) + proxy.stderr()
                assert (tmp_path / f"target-{tool}-{phase}" / project / "__init__.py").exists()
            venv = tmp_path / f"venv-{phase}"
            assert run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120).returncode == 0
            p = run([PACKMAN, "install", "--python", venv / "bin" / "python", "--installer", "uv", project],
                    env=install_env(homes["install"]), timeout=180)
            assert p.returncode == 0, show(p)
            assert run([venv / "bin" / "python", "-c", f"import {project}"]).returncode == 0

        install_all("gamma", "forwarded")
        s.cmd("recover")
        install_all("delta", "recovered")
    finally:
        s.stop()
