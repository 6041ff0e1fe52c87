#!/usr/bin/env bash
# Runs pytest and treats "no tests collected" (exit 5) as a failure: a suite that runs
# nothing proves nothing.
set -uo pipefail
python=$1
shift
"$python" -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
    echo "run-pytest: pytest collected no tests; failing on purpose" >&2
    exit 1
fi
exit $rc
