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
# Schemathesis is the version pinned in scripts/schemathesis/requirements.txt,
# installed on first use into target/py/ (ignored by git), never vendored; its
# settings are the committed scripts/schemathesis/schemathesis.toml (the same
# the reference server's OpenAPI test uses, waivers and reasons included).
set -u
here="$(cd "$(dirname "$0")/../.." && pwd)"
"$here/scripts/schemathesis/install" >/dev/null || exit 3
version="$(sed -n 's/^schemathesis==//p' "$here/scripts/schemathesis/requirements.txt")"
st="$here/target/py/schemathesis-$version/bin/st"
# Its cache and reports go to a scratch folder, not the caller's.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch" || exit 3
# The token for both of the document's security schemes (Bearer header and
# `__session` cookie), so Schemathesis never pairs it with a made-up cookie.
cp "$here/scripts/schemathesis/schemathesis.toml" schemathesis.toml
cat >>schemathesis.toml <<'TOML'

[auth.openapi.bearer]
bearer = "${TENANTRY_TOKEN_B}"

[auth.openapi.session]
api_key = "${TENANTRY_TOKEN_B}"
TOML
# Session tokens live 60 s: the run stays well inside that. One worker:
# CPython 3.11 can fail parsing Hypothesis's lambdas in two threads at once.
"$st" --config-file schemathesis.toml --no-color run "$TENANTRY_OPENAPI_URL" \
    --url "$TENANTRY_TARGET_URL" \
    --checks all \
    --max-time 20 \
    --request-timeout 10 \
    --workers 1 >&2
status=$?
case $status in
    0) exit 0 ;;   # no failure found
    1) exit 1 ;;   # failures found: a finding
    *) exit 3 ;;   # Schemathesis itself could not run
esac
