#!/usr/bin/env python3
"""Crawl a Redfish service's inventory with DMTF's python-redfish-library.

scripts/bench times this crawl against `rackside inventory NAME --json`. It reads the
resources that rackside's inventory reads, following the same links and fallbacks:

- systems, with their processors, memory, and storage with controllers and drives;
- chassis, with power supplies (PowerSubsystem, else the legacy Power resource), fans
  (ThermalSubsystem, else Thermal), temperature sensors (Sensors, else Thermal), and
  network adapters with their ports;
- the firmware inventory under UpdateService.

The crawl logs in with a Redfish session and deletes the session at the end. Requests are
sent one at a time because the library's client is synchronous, while rackside keeps up to
8 in flight (DEFAULT_MAX_IN_FLIGHT in rackside-redfish). The password comes from the environment variable RACKSIDE_PASSWORD so that
it stays out of the process list. The script prints a JSON summary (the components found,
the paths that could not be read, and the number of requests sent) on standard output.
"""

import argparse
import json
import os
import sys

import redfish


class Crawl:
    """One inventory crawl over a logged-in client, counting the GET requests it sends."""

    def __init__(self, client):
        self.client = client
        self.requests = 0
        self.unreadable = []

    def get(self, path):
        """Return the JSON body at `path`, or None after recording why it could not be read."""
        self.requests += 1
        response = self.client.get(path)
        if response.status != 200:
            self.unreadable.append({"path": path, "status": response.status})
            return None
        try:
            return response.dict
        except ValueError:
            self.unreadable.append({"path": path, "status": "invalid JSON"})
            return None

    def members(self, collection_path):
        """Return the bodies of every member of a collection, following next links."""
        bodies = []
        page_path = collection_path
        seen_pages = set()
        while page_path and page_path not in seen_pages:
            seen_pages.add(page_path)
            page = self.get(page_path)
            if page is None:
                break
            for entry in page.get("Members") or []:
                if not isinstance(entry, dict) or "@odata.id" not in entry:
                    continue
                if len(entry) > 1:
                    # An expanded member already carries its properties.
                    bodies.append(entry)
                    continue
                body = self.get(entry["@odata.id"])
                if body is not None:
                    bodies.append(body)
            page_path = page.get("Members@odata.nextLink")
        return bodies

    def linked_members(self, body, key):
        path = link(body, key)
        return self.members(path) if path else []

    def legacy_array(self, chassis, parent, key):
        path = link(chassis, parent)
        if not path:
            return []
        body = self.get(path)
        return list(body.get(key) or []) if body else []

    def power_supplies(self, chassis):
        path = link(chassis, "PowerSubsystem")
        if path:
            subsystem = self.get(path)
            if subsystem and link(subsystem, "PowerSupplies"):
                return self.linked_members(subsystem, "PowerSupplies")
        return self.legacy_array(chassis, "Power", "PowerSupplies")

    def fans(self, chassis):
        path = link(chassis, "ThermalSubsystem")
        if path:
            subsystem = self.get(path)
            if subsystem and link(subsystem, "Fans"):
                return self.linked_members(subsystem, "Fans")
        return self.legacy_array(chassis, "Thermal", "Fans")

    def temperatures(self, chassis):
        if link(chassis, "Sensors"):
            sensors = self.linked_members(chassis, "Sensors")
            found = [s for s in sensors if s.get("ReadingType") == "Temperature"]
            if found:
                return found
        return self.legacy_array(chassis, "Thermal", "Temperatures")

    def network_adapters(self, chassis):
        adapters = []
        for adapter in self.linked_members(chassis, "NetworkAdapters"):
            key = "Ports" if link(adapter, "Ports") else "NetworkPorts"
            adapters.append({"adapter": adapter, "ports": self.linked_members(adapter, key)})
        return adapters

    def storage(self, system):
        subsystems = []
        for storage in self.linked_members(system, "Storage"):
            controllers = storage.get("StorageControllers")
            if not isinstance(controllers, list) or not controllers:
                controllers = self.linked_members(storage, "Controllers")
            drives = []
            for entry in storage.get("Drives") or []:
                path = entry.get("@odata.id") if isinstance(entry, dict) else None
                if isinstance(path, str):
                    drive = self.get(path)
                    if drive is not None:
                        drives.append(drive)
            subsystems.append({"storage": storage, "controllers": controllers, "drives": drives})
        return subsystems

    def firmware(self, root):
        path = link(root, "UpdateService")
        update = self.get(path) if path else None
        return self.linked_members(update, "FirmwareInventory") if update else []

    def run(self, root):
        """Read the whole inventory and return a summary of what was found."""
        chassis = []
        for body in self.linked_members(root, "Chassis"):
            chassis.append(
                {
                    "chassis": summary(body),
                    "power_supplies": [summary(p) for p in self.power_supplies(body)],
                    "fans": [summary(f) for f in self.fans(body)],
                    "temperatures": [summary(t) for t in self.temperatures(body)],
                    "network_adapters": [
                        {
                            "adapter": summary(a["adapter"]),
                            "ports": [summary(p) for p in a["ports"]],
                        }
                        for a in self.network_adapters(body)
                    ],
                }
            )
        systems = []
        for body in self.linked_members(root, "Systems"):
            systems.append(
                {
                    "system": summary(body),
                    "processors": [summary(p) for p in self.linked_members(body, "Processors")],
                    "memory": [summary(m) for m in self.linked_members(body, "Memory")],
                    "storage": [
                        {
                            "storage": summary(s["storage"]),
                            "controllers": [summary(c) for c in s["controllers"]],
                            "drives": [summary(d) for d in s["drives"]],
                        }
                        for s in self.storage(body)
                    ],
                }
            )
        firmware = [dict(summary(f), version=f.get("Version")) for f in self.firmware(root)]
        return {"systems": systems, "chassis": chassis, "firmware": firmware}


def link(body, key):
    """Return the `@odata.id` of the link `key` in `body`, or None."""
    value = body.get(key) if isinstance(body, dict) else None
    if isinstance(value, dict) and isinstance(value.get("@odata.id"), str):
        return value["@odata.id"]
    return None


def summary(body):
    """Return the identifying fields and health of one resource."""
    status = body.get("Status") if isinstance(body.get("Status"), dict) else {}
    return {
        "id": body.get("Id", body.get("MemberId")),
        "name": body.get("Name"),
        "health": status.get("Health"),
        "state": status.get("State"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="service address, https://HOST:PORT")
    parser.add_argument("--user", required=True, help="Redfish user name")
    parser.add_argument(
        "--cafile",
        required=True,
        help="PEM file of the certificates trusted for the service; for the simulator, "
        "its own self-signed certificate",
    )
    args = parser.parse_args()
    password = os.environ.get("RACKSIDE_PASSWORD")
    if not password:
        sys.exit("bench_inventory: RACKSIDE_PASSWORD is not set; export the Redfish password")

    # The library checks the certificate against --cafile, so no check is switched off.
    client = redfish.redfish_client(
        base_url=args.base_url,
        username=args.user,
        password=password,
        cafile=args.cafile,
        timeout=30,
        max_retry=3,
    )
    client.login(auth="session")
    try:
        crawl = Crawl(client)
        inventory = crawl.run(client.root)
    finally:
        client.logout()
    inventory["unreadable"] = crawl.unreadable
    # The root GET by redfish_client and the session POST and DELETE come on top.
    inventory["get_requests"] = crawl.requests
    json.dump(inventory, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
