#!/usr/bin/env bash
# Builds the parafetch wheel with maturin, installs it into a virtualenv and runs the
# Python tests (python/tests/) with pytest. Extra arguments go to pytest.
#
#   PARAFETCH_PY_VENV  the virtualenv (made when missing; default target/python-venv)
#   PYTHON             the interpreter that makes it (default python3; 3.9 or later)
#   CARGO_TARGET_DIR   where cargo builds, as usual
#
# Runs from any directory; needs a Rust toolchain and python3 with venv, not the Python
# development headers.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PARAFETCH_PY_VENV:-$here/../target/python-venv}"

[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q "maturin>=1.9.4,<2" "pytest>=7"

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
(cd "$here" && "$venv/bin/maturin" build --release --interpreter "$venv/bin/python" --out "$wheels")
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheels"/parafetch-*.whl

# The pytest script, not `python -m pytest`: that would put the working directory first in
# sys.path, and from python/ the source folder parafetch/ (without the extension) would
# shadow the installed package.
cd "$here"
exec "$venv/bin/pytest" -p no:cacheprovider "$here/tests" "$@"
