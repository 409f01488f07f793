#!/bin/sh
# Runs DMTF's rf_service_validator with the offline CSDL schemas against the BMC simulator
# serving its embedded sample server (or MOCKUP_DIR) on a free loopback port.
#
# Usage: service-validator.sh SCHEMA_DIR [MOCKUP_DIR]
# Environment: RACKSIDE_VENV (Python venv holding the validator, default: .venv at the
#              workspace root).
# Exit status: the validator's (1 when any property failed).
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 SCHEMA_DIR [MOCKUP_DIR]" >&2
    exit 2
fi
schemas=$1
root=$(cd "$(dirname "$0")/../../.." && pwd)
venv=${RACKSIDE_VENV:-$root/.venv}
target=${CARGO_TARGET_DIR:-$root/target}
cargo build -q -p rackside-bmc --example serve --manifest-path "$root/Cargo.toml"

work=$(mktemp -d)
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
if [ $# -gt 1 ]; then
    set -- --mockup "$2"
else
    set --
fi
RACKSIDE_BMC_PASSWORD="$password" "$target/debug/examples/serve" --state-dir "$work/state" "$@" \
    > "$work/bmc.out" 2> "$work/bmc.err" &
bmc=$!
trap 'kill "$bmc" 2>/dev/null || true' EXIT
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -s "$work/bmc.out" ] && break
    sleep 0.5
done
url=$(head -n 1 "$work/bmc.out")

status=0
"$venv/bin/rf_service_validator" -r "$url" -u root -p "$password" \
    --schema_directory "$schemas" --logdir "$work/logs" > "$work/validator.out" 2>&1 || status=$?
sed -n '/PASS.*WARN.*FAIL/,/^$/p' "$work/validator.out"
echo "logs: $work/logs"
exit "$status"
