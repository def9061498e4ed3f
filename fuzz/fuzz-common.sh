# Shared by scripts/fuzz-smoke and scripts/fuzz (sourced from fuzz/).
# The build: nightly, no sanitizer (every crate of ours forbids unsafe code;
# ASan would halve the exec rate on a shared 2-core machine for no extra
# finding in safe Rust), with debug assertions and overflow checks.
# FUZZ_PROFILE picks the profile: `release` (the default; long runs want the
# exec rate) or `dev` (the smoke: a cold build takes ~2 min instead of ~15,
# at a lower exec rate, which a bounded smoke run can afford).
fuzz_profile_flags=()
case "${FUZZ_PROFILE:-release}" in
    release) ;;
    dev) fuzz_profile_flags=(--dev) ;;
    *) echo "error: FUZZ_PROFILE must be release or dev, not '${FUZZ_PROFILE}'" >&2; exit 2 ;;
esac
fuzz_flags="--sanitizer none${fuzz_profile_flags[*]:+ ${fuzz_profile_flags[*]}}"

say() { printf '\n==> %s\n' "$*"; }

ensure_tools() {
    if ! cargo +nightly --version >/dev/null 2>&1; then
        echo "error: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
        exit 1
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        say "installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
}

build_targets() {
    cargo +nightly fuzz build --sanitizer none "${fuzz_profile_flags[@]}" "$@"
}

# The dictionary of a target, if it has one.
dict_for() {
    case "$1" in
        token_verify | token_mutate) echo token.dict ;;
        org_guard) echo org.dict ;;
        scenario_parse) echo scenario.dict ;;
        profile_parse) echo profile.dict ;;
    esac
}

# run_target TARGET LOG [libFuzzer args]: new inputs go to the git-ignored
# working corpus; the committed seeds are read only.
run_target() {
    local target="$1" log="$2"
    shift 2
    local work="target/corpus/$target" dict
    mkdir -p "$work" "corpus/$target" "$(dirname "$log")"
    dict=$(dict_for "$target")
    # One process (the same as -jobs=1, but logging to LOG, not fuzz-0.log).
    local args=(-print_final_stats=1 "$@")
    [ -n "$dict" ] && args+=("-dict=$dict")
    cargo +nightly fuzz run --sanitizer none "${fuzz_profile_flags[@]}" "$target" "$work" "corpus/$target" -- "${args[@]}" >"$log" 2>&1
}

# The last status line (coverage, features, corpus, exec/s) of a run.
summary() {
    grep -E '#[0-9]+.*(cov|ft):' "$1" | tail -1 || true
}

reproducer() {
    local log="$1" target="$2" path
    path=$(grep -oE "artifacts/$target/[A-Za-z0-9_-]+" "$log" | tail -1 || true)
    if [ -n "$path" ]; then
        echo "reproducer: fuzz/$path"
        echo "replay:     cd fuzz && cargo +nightly fuzz run $fuzz_flags $target $path"
        echo "minimise:   cd fuzz && cargo +nightly fuzz tmin $fuzz_flags $target $path"
    else
        echo "no reproducer written; see the log"
    fi
}
