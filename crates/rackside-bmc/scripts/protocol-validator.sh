#!/bin/sh
# Runs DMTF's rf_protocol_validator against the BMC simulator. The validator sends SSDP
# multicast, so the simulator and the validator run in a network namespace that has nothing but
# loopback.
#
# Usage: protocol-validator.sh [MOCKUP_DIR]
# Environment: RACKSIDE_VENV (Python venv holding the validator, default: .venv at the
#              workspace root),
#              REPORT_DIR (where reports go, default: a new temporary folder).
# Exit status: the validator's (0 when nothing failed).
set -eu

root=$(cd "$(dirname "$0")/../../.." && pwd)
venv=${RACKSIDE_VENV:-$root/.venv}
target=${CARGO_TARGET_DIR:-$root/target}
cargo build -q -p rackside-bmc --example serve --manifest-path "$root/Cargo.toml"

work=$(mktemp -d)
report_dir=${REPORT_DIR:-$work/reports}
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
mockup_args=""
if [ $# -gt 0 ]; then
    mockup_args="--mockup $1"
fi

namespace="unshare -n"
if [ "$(id -u)" != 0 ]; then
    namespace="unshare -rn"
fi

export RACKSIDE_BMC_PASSWORD="$password" BMC="$target/debug/examples/serve" WORK="$work" \
    MOCKUP_ARGS="$mockup_args" VALIDATOR="$venv/bin/rf_protocol_validator" REPORT_DIR="$report_dir"
status=0
$namespace sh -c '
    ip link set lo up
    # The port is free: this namespace has no other listener.
    "$BMC" --port 8443 --state-dir "$WORK/state" --power-delay-ms 500 $MOCKUP_ARGS \
        > "$WORK/bmc.out" 2> "$WORK/bmc.err" &
    bmc=$!
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        [ -s "$WORK/bmc.out" ] && break
        sleep 0.5
    done
    # The validator verifies the certificate on some requests even with --no-cert-check, so it
    # is given the simulator certificate as its CA bundle.
    REQUESTS_CA_BUNDLE="$WORK/state/bmc-cert.pem" "$VALIDATOR" -r https://127.0.0.1:8443 \
        -u root -p "$RACKSIDE_BMC_PASSWORD" --ca-bundle "$WORK/state/bmc-cert.pem" \
        --avoid-http-redirect --report-dir "$REPORT_DIR" --report-type tsv > "$WORK/validator.out" 2>&1
    result=$?
    kill "$bmc"
    exit $result
' || status=$?

grep "Summary" "$work/validator.out" || tail -20 "$work/validator.out"
if [ "$status" != 0 ]; then
    awk -F'\t' '$5 == "FAIL"' "$report_dir"/*.tsv 2>/dev/null || true
fi
echo "reports: $report_dir"
exit "$status"
