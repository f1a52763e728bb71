"""Figure 5's handler process: a polled (`scan`) handler whose device set changes every scan.

Run as a script: `python scan_handler.py` with DISCOVERY_HANDLERS_DIRECTORY set.

Every scan returns 50 freshly built devices, as a typical scan does; the
`scan-counter` device carries the handler's total number of scans in its SCAN
property, so the set differs each time (a snapshot goes out) and a client can
tell how many scans the whole process made: were the streams not sharing one
task, the counter would climb once per task per interval.
"""

from __future__ import annotations

from typing import Any

import akri_sdk
from akri_sdk import Device, DiscoveryContext, DiscoveryHandler
from akri_sdk.logs import configure_logging

HANDLER_NAME = "benchScan"
INTERVAL = 0.05
DEVICES = 50
SCAN_PROPERTY = "SCAN"
COUNTER_ID = "scan-counter"


class ScanHandler(DiscoveryHandler):
    name = HANDLER_NAME
    shared = True
    scan_interval = INTERVAL

    def __init__(self) -> None:
        self.scans = 0

    async def scan(self, ctx: DiscoveryContext[Any]) -> list[Device]:
        self.scans += 1
        devices = [
            Device(
                id=f"device-{i:02d}",
                properties={"DEVICE_ID": f"device-{i:02d}", "DEVICE_ADDRESS": f"10.0.0.{i}"},
            )
            for i in range(DEVICES - 1)
        ]
        devices.append(Device(id=COUNTER_ID, properties={SCAN_PROPERTY: str(self.scans)}))
        return devices


if __name__ == "__main__":
    configure_logging()  # as `akri-dh run` does: info lines to stderr
    akri_sdk.run(ScanHandler())
