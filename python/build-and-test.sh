#!/usr/bin/env bash
# Builds the parafetch wheel the way `pip install ./python` does (pip, through the PEP 517
# build backend maturin, in an isolated build environment), installs it into a virtualenv
# and runs the Python tests (python/tests/) with pytest. Extra arguments go to pytest.
#
#   PARAFETCH_PY_VENV  the virtualenv (made when missing; default target/python-venv)
#   PYTHON             the interpreter that makes it (default python3; 3.9 or later)
#   PARAFETCH_PY_ALSO  more interpreters (paths, space-separated) to run the tests with,
#                      the same abi3 wheel installed in a virtualenv of each (e.g. the
#                      oldest supported, 3.9)
#   CARGO_TARGET_DIR   where cargo builds, as usual
#
# Runs from any directory; needs a Rust toolchain and python3 with venv, not the Python
# development headers.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PARAFETCH_PY_VENV:-$here/../target/python-venv}"

[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q "pytest>=7"

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/python" -m pip wheel -q --no-deps --wheel-dir "$wheels" "$here"
wheel="$(ls "$wheels"/parafetch-*.whl)"
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"

# The pytest script, not `python -m pytest`: that would put the working directory first in
# sys.path, and from python/ the source folder parafetch/ (without the extension) would
# shadow the installed package.
cd "$here"
"$venv/bin/pytest" -p no:cacheprovider "$here/tests" "$@"

for python in ${PARAFETCH_PY_ALSO:-}; do
    version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    also="$venv-$version"
    echo "== the same wheel on Python $version ($python)"
    [ -x "$also/bin/python" ] || "$python" -m venv "$also"
    "$also/bin/python" -m pip install -q "pytest>=7"
    "$also/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"
    "$also/bin/pytest" -p no:cacheprovider "$here/tests" "$@"
done
