#!/usr/bin/env bash
# Regenerate src/hypoprobe/_proto/metrics_pb2.py(i) from src/hypoprobe/_proto/metrics.proto.
#
# The generated code is checked in, so installing hypoprobe needs no protoc. It is made by
# grpcio-tools 1.63.0 (protoc for protobuf 5.26.1): code of that generation carries no
# runtime version check and runs on every protobuf runtime from 5.26 through 7.x, the range
# opentelemetry-proto (in the test dependencies) accepts. Newer generators stamp a
# minimum runtime into the code and would raise on older runtimes.
#
#   bash scripts/generate-proto.sh      # uses a throwaway venv under ${TMPDIR:-/tmp}
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PROTOC_VENV:-${TMPDIR:-/tmp}/hypoprobe-protoc-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "grpcio-tools==1.63.0"
fi
"$venv/bin/python" -m grpc_tools.protoc -I src --python_out=src --pyi_out=src \
    src/hypoprobe/_proto/metrics.proto
echo "generated src/hypoprobe/_proto/metrics_pb2.py and metrics_pb2.pyi"
