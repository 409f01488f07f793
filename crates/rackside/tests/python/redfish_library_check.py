"""Drives the rackside BMC simulator with DMTF's python-redfish-library, a client nobody on
this project wrote: reads systems and logs, resets the system, waits for the new power state.

Usage: redfish_library_check.py BASE_URL USER CA_FILE; the password comes from RACKSIDE_PASSWORD.
Prints one line per check and exits non-zero on the first failure.
"""

import os
import sys
import time

import redfish


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}")
        sys.exit(1)
    print(f"ok: {message}")


def main():
    base_url, user, ca_file = sys.argv[1:4]
    client = redfish.redfish_client(
        base_url=base_url,
        username=user,
        password=os.environ["RACKSIDE_PASSWORD"],
        cafile=ca_file,
        timeout=10,
        max_retry=2,
    )
    client.login(auth="session")
    try:
        systems = client.get("/redfish/v1/Systems")
        check(systems.status == 200, "GET Systems returns 200")
        members = systems.dict["Members"]
        check(len(members) >= 1, "Systems has at least one member")
        system_path = members[0]["@odata.id"]
        system = client.get(system_path)
        check(system.status == 200, f"GET {system_path} returns 200")
        check("PowerState" in system.dict, "the system reports PowerState")

        managers = client.get("/redfish/v1/Managers").dict["Members"]
        manager_path = managers[0]["@odata.id"]
        services = client.get(f"{manager_path}/LogServices").dict["Members"]
        check(len(services) >= 1, "the manager has log services")
        for service in services:
            entries_path = client.get(service["@odata.id"]).dict["Entries"]["@odata.id"]
            page = client.get(entries_path)
            check(page.status == 200, f"GET {entries_path} returns 200")
            check(len(page.dict["Members"]) >= 1, f"{entries_path} has entries")

        actions = system.dict["Actions"]["#ComputerSystem.Reset"]
        allowed = actions.get("ResetType@Redfish.AllowableValues", [])
        check("ForceOff" in allowed and "On" in allowed, "ForceOff and On are allowed")
        target = actions["target"]
        response = client.post(target, body={"ResetType": "ForceOff"})
        check(response.status in (200, 202, 204), f"ForceOff accepted ({response.status})")
        wait_for_power(client, system_path, "Off")
        response = client.post(target, body={"ResetType": "On"})
        check(response.status in (200, 202, 204), f"On accepted ({response.status})")
        wait_for_power(client, system_path, "On")

        bad = client.post(target, body={"ResetType": "NoSuchReset"})
        check(bad.status == 400, "an unknown ResetType is rejected with 400")
    finally:
        client.logout()
    print("all checks passed")


def wait_for_power(client, system_path, wanted):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = client.get(system_path).dict.get("PowerState")
        if state == wanted:
            check(True, f"PowerState reached {wanted}")
            return
        time.sleep(0.2)
    check(False, f"PowerState did not reach {wanted} within 30 s")


if __name__ == "__main__":
    main()
