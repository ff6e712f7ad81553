#!/usr/bin/env bash
# Runs the sluice-bench criterion benches and prints each figure's median with criterion's
# 95% confidence interval. Extra arguments go to criterion, e.g. a filter:
#   bench/run.sh token          # only the token benches
#   bench/run.sh --quick        # shorter runs, rougher figures
# CARGO_TARGET_DIR is honoured (criterion's data lands in $CARGO_TARGET_DIR/criterion).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

stamp="$(mktemp)"
trap 'rm -f "$stamp"' EXIT

cargo bench -p sluice-bench --benches -- "$@"

# Criterion writes <target>/criterion/<group>/<bench...>/new/estimates.json; times are in ns.
echo
echo "median [95% CI] of each figure measured by this run, from $target/criterion"
find "$target/criterion" -path '*/new/estimates.json' -newer "$stamp" | sort | while read -r file; do
    name="${file#"$target/criterion/"}"
    name="${name%/new/estimates.json}"
    python3 - "$name" "$file" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
m = json.load(open(path))["median"]
def fmt(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.3g} ns"
ci = m["confidence_interval"]
print(f"{name:45} {fmt(m['point_estimate']):>10}  [{fmt(ci['lower_bound'])} .. {fmt(ci['upper_bound'])}]")
PY
done
