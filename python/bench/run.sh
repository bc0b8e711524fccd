#!/usr/bin/env bash
# Makes the Python benchmark's virtualenv (the peers from requirements.txt and a parafetch
# wheel) and runs compare.py in it. Arguments go to compare.py, e.g. --quick, --json FILE.
#
#   PARAFETCH_PY_BENCH_VENV  the virtualenv (made when missing; default target/python-bench-venv)
#   PARAFETCH_WHEEL          a built parafetch wheel to install; without it maturin builds
#                            one in release mode (a Rust toolchain is needed)
#   PYTHON                   the interpreter that makes the virtualenv (default python3)
#
# Needs nginx (apt-get install nginx-light). Run it on a quiet machine: the numbers are
# wall time and CPU time on loopback.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${PARAFETCH_PY_BENCH_VENV:-$root/target/python-bench-venv}"

[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q -r "$here/requirements.txt"

if [ -n "${PARAFETCH_WHEEL:-}" ]; then
    wheel="$PARAFETCH_WHEEL"
else
    "$venv/bin/python" -m pip install -q "maturin>=1.9.4,<2"
    wheels="$(mktemp -d)"
    trap 'rm -rf "$wheels"' EXIT
    (cd "$root/python" && "$venv/bin/maturin" build --release --interpreter "$venv/bin/python" --out "$wheels")
    wheel="$(ls "$wheels"/parafetch-*.whl)"
fi
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"

# Not from python/: the source folder parafetch/ (without the extension) would shadow the
# installed package. compare.py's own folder is the first entry of sys.path instead.
cd "$root"
exec "$venv/bin/python" "$here/compare.py" "$@"
