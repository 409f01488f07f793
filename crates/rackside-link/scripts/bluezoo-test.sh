#!/usr/bin/env bash
# Runs the BLE link test against BlueZoo (PyPI `bluezoo`, a user-space BlueZ mock) on a private
# D-Bus, so no Bluetooth hardware or bluetoothd is needed. Needs dbus-daemon, libdbus-1-dev and
# a Python with bluezoo installed (BLUEZOO, default: bluezoo on PATH).
set -euo pipefail

workspace=$(cd "$(dirname "$0")/../../.." && pwd)
bluezoo=${BLUEZOO:-bluezoo}
bus_dir=$(mktemp -d)
trap 'kill "${bluezoo_pid:-}" "${dbus_pid:-}" 2>/dev/null || true; rm -rf "$bus_dir"' EXIT

dbus-daemon --session --address="unix:path=$bus_dir/bus" --nofork --print-pid >"$bus_dir/pid" 2>/dev/null &
dbus_pid=$!
sleep 1
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$bus_dir/bus"
export DBUS_SESSION_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS"

"$bluezoo" --bus-session --auto-enable --scan-interval 1 \
    -a 00:00:00:01:00:01 -a 00:00:00:02:00:02 >"$bus_dir/bluezoo.log" 2>&1 &
bluezoo_pid=$!
sleep 2

cd "$workspace"
RACKSIDE_BLUEZOO=1 cargo test -p rackside-link --features ble --test link ble_link -- --nocapture
