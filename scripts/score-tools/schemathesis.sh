#!/usr/bin/env bash
# A worked example of the `tenantry score --tool` contract (docs/score.md):
# Schemathesis, the OpenAPI property-based tester from PyPI, run against one
# stack of the corpus. It gets the target's OpenAPI document and org b's
# session token from the environment, runs every check it has (including its
# object-level authorization check) for a bounded time, and answers by exit
# status: 0 no finding, 1 finding, anything else an error of the run.
#
#   cargo run --features inject -- score --tool "schemathesis=scripts/score-tools/schemathesis.sh"
#
# Schemathesis is installed on first use into target/score-tools/ (ignored by
# git; override with TENANTRY_TOOLS_DIR), never vendored.
set -u
here="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${TENANTRY_TOOLS_DIR:-$here/target/score-tools}/schemathesis"
if [ ! -x "$venv/bin/schemathesis" ]; then
    # Two runs may start at once: one installs, the other waits for it.
    mkdir -p "$(dirname "$venv")"
    exec 9>"$venv.lock"
    flock 9
    if [ ! -x "$venv/bin/schemathesis" ]; then
        echo "installing schemathesis from PyPI into $venv" >&2
        python3 -m venv "$venv" && "$venv/bin/pip" install -q 'schemathesis>=4,<5' >&2 || exit 3
    fi
    flock -u 9
fi
# Its cache and reports go to a scratch folder, not the caller's.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch" || exit 3
# Session tokens live 60 s: the run stays well inside that.
"$venv/bin/schemathesis" run "$TENANTRY_OPENAPI_URL" \
    --url "$TENANTRY_TARGET_URL" \
    --header "Authorization: Bearer $TENANTRY_TOKEN_B" \
    --checks all \
    --max-time 20 \
    --request-timeout 10 \
    --workers 2 \
    --no-color >&2
status=$?
case $status in
    0) exit 0 ;;   # no failure found
    1) exit 1 ;;   # failures found: a finding
    *) exit 3 ;;   # Schemathesis itself could not run
esac
