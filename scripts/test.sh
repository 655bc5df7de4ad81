#!/usr/bin/env bash
# Runs every test packman has: Rust unit, state-machine and end-to-end tests, then the
# interoperability tests against python-tuf (the reference implementation). Installs what
# the Python side needs into .venv first, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt

cargo fmt --all --check
cargo build --release --locked -p packman -p packman-conformance -p packman-attacks
cargo test --workspace --locked
# Again with the portable file-system calls (per-file fsync, no Linux-only hints) that
# non-Linux platforms use, so CI on Linux exercises them too.
PACKMAN_PORTABLE_FS=1 cargo test --locked -p packman-repo -p packman-fs
PACKMAN_PORTABLE_FS=1 cargo test --locked -p packman --test repo_cli
PACKMAN_BIN_DIR="$PWD/target/release" .venv/bin/python -m pytest tests/interop -q -p no:cacheprovider
