#!/usr/bin/env bash
# Runs the Python SDK's tests against a real `paddock up` (built with `go build` by the fixture).
# Installs nothing: the SDK is used in place through PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="sdk/python${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 600 python3 -m pytest -q sdk/python/tests "$@"
