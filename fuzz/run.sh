#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a while: fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS (default 60) is each target's -max_total_time; no TARGET means all of them,
# one after the other. Corpora live in fuzz/corpus/<target> (the committed seed-* inputs
# plus whatever the fuzzer adds, which git ignores), crash inputs in
# fuzz/artifacts/<target>, each run's libFuzzer log in fuzz/logs/<target>.log.
#
# Prints a table of executions and crashes per target, and exits non-zero if any target
# crashed (or timed out, or ran out of memory), with the input's path printed.
#
# The toolchain is stable: cargo-fuzz needs nightly flags (-Zsanitizer), so the fuzz
# build alone runs with RUSTC_BOOTSTRAP=1. CARGO_TARGET_DIR is honoured (default
# fuzz/target); CARGO_BUILD_JOBS defaults to 2, this machine's size. FUZZ_ARGS adds
# libFuzzer options to every run (e.g. FUZZ_ARGS="-rss_limit_mb=4096").
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz_dir")"

seconds="${1:-60}"
if [[ $# -gt 0 ]]; then shift; fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

all_targets=()
for file in "$fuzz_dir"/fuzz_targets/*.rs; do
    all_targets+=("$(basename "$file" .rs)")
done
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=("${all_targets[@]}")
fi
for target in "${targets[@]}"; do
    if [[ ! -f "$fuzz_dir/fuzz_targets/$target.rs" ]]; then
        echo "unknown target '$target'; targets: ${all_targets[*]}" >&2
        exit 2
    fi
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cd "$root"

echo "== building ${targets[*]}" >&2
if [[ ${#targets[@]} -eq ${#all_targets[@]} ]]; then
    cargo fuzz build
else
    for target in "${targets[@]}"; do
        cargo fuzz build "$target"
    done
fi

mkdir -p "$fuzz_dir/logs"
rows=()
failed=0
for target in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$target"
    artifacts="$fuzz_dir/artifacts/$target"
    log="$fuzz_dir/logs/$target.log"
    mkdir -p "$corpus" "$artifacts"
    echo "== $target: ${seconds}s (log: ${log#"$root"/})" >&2
    status=0
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
    cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=30 \
        -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
    executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    if [[ -z "$executions" ]]; then
        # A crash's log may end before the final stats: take the last status line.
        executions="$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)"
    fi
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
    crashes=0
    if [[ $status -ne 0 ]]; then
        failed=1
        crashes=1
        echo "!! $target failed (exit $status); last lines of its log:" >&2
        tail -n 40 "$log" >&2
        if [[ -z "$artifact" ]]; then
            artifact="(no input saved: see ${log#"$root"/})"
        fi
    fi
    rows+=("$target|${executions:-?}|$crashes|${artifact:-}")
done

echo
printf '%-14s %14s %8s  %s\n' target executions crashes artifact
for row in "${rows[@]}"; do
    IFS='|' read -r target executions crashes artifact <<<"$row"
    printf '%-14s %14s %8s  %s\n' "$target" "$executions" "$crashes" "$artifact"
done
if [[ $failed -ne 0 ]]; then
    echo
    echo "Reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET ARTIFACT" >&2
    echo "Minimize:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin TARGET ARTIFACT" >&2
fi
exit "$failed"
