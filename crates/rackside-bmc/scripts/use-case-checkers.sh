#!/bin/sh
# Runs DMTF's rf_use_case_checkers (account management, power control, boot override, manager
# Ethernet interfaces, query parameters) against the BMC simulator serving its embedded sample
# server (or MOCKUP_DIR) on a free loopback port. The power control checks wait about a minute.
#
# Usage: use-case-checkers.sh [MOCKUP_DIR]
# Environment: RACKSIDE_VENV (Python venv holding the checkers, default: .venv at the
#              workspace root).
# Exit status: the checkers' (1 when any check failed).
set -eu

root=$(cd "$(dirname "$0")/../../.." && pwd)
venv=${RACKSIDE_VENV:-$root/.venv}
target=${CARGO_TARGET_DIR:-$root/target}
cargo build -q -p rackside-bmc --example serve --manifest-path "$root/Cargo.toml"

work=$(mktemp -d)
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
if [ $# -gt 0 ]; then
    set -- --mockup "$1"
fi
RACKSIDE_BMC_PASSWORD="$password" "$target/debug/examples/serve" --state-dir "$work/state" \
    --power-delay-ms 1000 "$@" > "$work/bmc.out" 2> "$work/bmc.err" &
bmc=$!
trap 'kill "$bmc" 2>/dev/null || true' EXIT
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -s "$work/bmc.out" ] && break
    sleep 0.5
done
url=$(head -n 1 "$work/bmc.out")

status=0
"$venv/bin/rf_use_case_checkers" -r "$url" -u root -p "$password" \
    --report-dir "$work/reports" > "$work/checkers.out" 2>&1 || status=$?
sed -n '/PASS.*WARN.*FAIL/,/^$/p' "$work/checkers.out"
echo "reports: $work/reports"
exit "$status"
