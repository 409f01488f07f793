#!/usr/bin/env python3
"""Run a fleet health read or a fleet power-on with DMTF's python-redfish-library.

scripts/bench_fleet times this against `rackside health --group G` and
`rackside power --group G on` over the same simulated BMCs, with a thread pool as large as
rackside's `--concurrency`. Each worker logs in with a Redfish session, does the work and
deletes the session:

- health: reads what rackside's health report reads (systems with processors, memory and
  storage; chassis with power supplies, fans, temperatures and network adapters), using the
  crawl of scripts/bench_inventory.py without the firmware inventory;
- power-on: posts ComputerSystem.Reset with ResetType On to each system that is not on, then
  reads PowerState once a second (rackside's default poll interval) until it is On, for at
  most 300 s.

The password comes from RACKSIDE_PASSWORD. The targets file has one `https://HOST:PORT` per
line; --cafile holds every BMC certificate. A JSON summary goes to standard output and the
exit status is 1 when any server failed.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import time

import redfish

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_inventory import Crawl, link  # noqa: E402

POLL_SECONDS = 1.0
POWER_DEADLINE_SECONDS = 300.0


class HealthCrawl(Crawl):
    """The inventory crawl without the firmware inventory, which health does not read."""

    def firmware(self, root):
        return []


def health(client):
    crawl = HealthCrawl(client)
    report = crawl.run(client.root)
    return {"systems": len(report["systems"]), "unreadable": len(crawl.unreadable)}


def power_on(client):
    systems = client.get(link(client.root, "Systems"))
    if systems.status != 200:
        raise RuntimeError(f"GET Systems returned {systems.status}")
    done = []
    for member in systems.dict.get("Members", []):
        path = member["@odata.id"]
        system = client.get(path)
        if system.dict.get("PowerState") == "On":
            done.append(path)
            continue
        target = system.dict["Actions"]["#ComputerSystem.Reset"]["target"]
        response = client.post(target, body={"ResetType": "On"})
        if response.status not in (200, 202, 204):
            raise RuntimeError(f"reset of {path} returned {response.status}")
        started = time.monotonic()
        while True:
            state = client.get(path).dict.get("PowerState")
            if state == "On":
                break
            if time.monotonic() - started > POWER_DEADLINE_SECONDS:
                raise RuntimeError(f"{path} still {state} after {POWER_DEADLINE_SECONDS} s")
            time.sleep(POLL_SECONDS)
        done.append(path)
    return {"systems_on": len(done)}


def run_one(base_url, user, password, cafile, work):
    client = redfish.redfish_client(
        base_url=base_url,
        username=user,
        password=password,
        cafile=cafile,
        timeout=30,
        max_retry=3,
    )
    client.login(auth="session")
    try:
        return work(client)
    finally:
        client.logout()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["health", "power-on"])
    parser.add_argument("--targets", required=True, help="file with one https://HOST:PORT a line")
    parser.add_argument("--user", required=True, help="Redfish user name")
    parser.add_argument("--cafile", required=True, help="PEM file with every BMC certificate")
    parser.add_argument("--workers", type=int, default=8, help="thread pool size")
    args = parser.parse_args()
    password = os.environ.get("RACKSIDE_PASSWORD")
    if not password:
        sys.exit("bench_fleet: RACKSIDE_PASSWORD is not set; export the Redfish password")
    with open(args.targets, encoding="utf-8") as handle:
        targets = [line.strip() for line in handle if line.strip()]
    work = health if args.mode == "health" else power_on

    results = {}
    failures = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = {
            pool.submit(run_one, url, args.user, password, args.cafile, work): url
            for url in targets
        }
        for future in concurrent.futures.as_completed(futures):
            url = futures[future]
            try:
                results[url] = future.result()
            except Exception as error:  # noqa: BLE001 - every failure is reported per server
                failures[url] = str(error)
    json.dump({"ok": len(results), "failed": failures}, sys.stdout, indent=1)
    sys.stdout.write("\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
