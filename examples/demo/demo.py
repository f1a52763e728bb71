"""The live local demo behind `make demo`: Akri discovery with no cluster.

A local Agent (`akri-dh agent`) applies two Configurations and shows their
Instances as they come and go:

- `akri-debug-echo`: the built-in debugEcho handler (three devices);
- `akri-sound-sensors`: the MQTT plugin watching `booth/+/sound` on a mosquitto
  broker started here on loopback, where simulated sound sensors (as in the
  Akri + WebAssembly "From Sensors to Servers" demo) join, publish their volume,
  and go silent; a silent sensor disappears after `timeoutSeconds`, and one that
  loses its connection is marked offline at once by its last will.

Ctrl-C stops everything: the sensors, the broker, the handlers and the Agent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CONFIGURATIONS = """\
apiVersion: akri.sh/v0
kind: Configuration
metadata:
  name: akri-debug-echo
spec:
  discoveryHandler:
    name: debugEcho
    discoveryDetails: |
      descriptions: [foo0, foo1, foo2]
---
apiVersion: akri.sh/v0
kind: Configuration
metadata:
  name: akri-sound-sensors
spec:
  discoveryHandler:
    name: mqtt
    discoveryDetails: |
      mqttBrokerUri: mqtt://127.0.0.1:{port}
      topics: ["booth/+/sound", "booth/+/status"]
      deviceIdPattern: booth/{{id}}/sound
      livenessTopic: booth/{{id}}/status
      timeoutSeconds: {timeout}
      jsonFilter: {{field: volume, op: ">=", value: 0}}
  brokerProperties:
    SPIN_APP: booth-volume
"""

# (second, action, sensor): a scripted day at the booth.
SCRIPT = [
    (0.5, "join", "booth-1"),
    (1.5, "join", "booth-2"),
    (4.0, "join", "booth-3"),
    (7.0, "silent", "booth-1"),  # stops publishing: gone after timeoutSeconds of silence
    (9.0, "join", "booth-4"),
    (12.0, "crash", "booth-2"),  # connection lost: its last will says offline
    (15.0, "join", "booth-1"),  # back again
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_broker(directory: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        sys.exit(
            "mosquitto is not installed: `make demo` installs it (or: apt-get install mosquitto)"
        )
    config = directory / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")  # otherwise it drops to `mosquitto` and cannot read our dir
    config.write_text("\n".join(lines) + "\n")
    broker = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return broker
        except OSError:
            if broker.poll() is not None:
                sys.exit(f"mosquitto exited with {broker.returncode}")
            time.sleep(0.05)
    broker.kill()
    sys.exit("mosquitto did not start listening")


class Sensor:
    """One simulated sound sensor: publishes {"volume": N} every second."""

    def __init__(self, name: str, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.name = name
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"demo-{name}",
            protocol=mqtt.MQTTProtocolVersion.MQTTv5,
        )
        # Last will: if the connection drops without a goodbye, the broker says offline.
        self.client.will_set(f"booth/{name}/status", b"offline", qos=1, retain=True)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        self.client.publish(f"booth/{name}/status", b"online", qos=1, retain=True)
        self.publishing = True

    def tick(self) -> None:
        if self.publishing:
            volume = random.randint(40, 95)
            self.client.publish(f"booth/{self.name}/sound", json.dumps({"volume": volume}))

    def go_quiet(self) -> None:
        """Stop publishing and leave cleanly: no status left, so the timeout applies."""
        self.publishing = False
        self.client.publish(f"booth/{self.name}/status", b"", qos=1, retain=True).wait_for_publish(
            2
        )
        self.close()

    def crash(self) -> None:
        # Drop the TCP connection without DISCONNECT, as a sensor losing power would.
        self.publishing = False
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def simulate(port: int, stop: threading.Event) -> None:
    sensors: dict[str, Sensor] = {}
    started = time.monotonic()
    script = list(SCRIPT)
    try:
        while not stop.is_set():
            now = time.monotonic() - started
            while script and script[0][0] <= now:
                _, action, name = script.pop(0)
                print(f"[sensors] {now:5.1f}s {name}: {action}", file=sys.stderr, flush=True)
                if action == "join":
                    if name in sensors:
                        sensors[name].close()
                    sensors[name] = Sensor(name, port)
                elif action == "silent":
                    sensors.pop(name).go_quiet()
                elif action == "crash":
                    sensors.pop(name).crash()
            for sensor in sensors.values():
                sensor.tick()
            stop.wait(1.0)
    finally:
        for sensor in sensors.values():
            sensor.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--timeout", type=float, default=4.0, help="sensor silence timeout")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    args = parser.parse_args()
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

    from akri_sdk.handlers.debug_echo import DebugEcho
    from akri_sdk.local_agent.command import AgentOptions, run_agent
    from akri_sdk.plugins import load_registry

    directory = Path(tempfile.mkdtemp(prefix="akri-demo-", dir="/tmp"))
    port = free_port()
    broker = start_broker(directory, port)
    stop = threading.Event()
    simulator = threading.Thread(target=simulate, args=(port, stop), daemon=True)
    try:
        manifest = directory / "configurations.yaml"
        manifest.write_text(CONFIGURATIONS.format(port=port, timeout=args.timeout))
        os.environ["DEBUG_ECHO_AVAILABILITY_FILE"] = str(directory / "availability.txt")
        mqtt = load_registry().get("mqtt")
        simulator.start()
        options = AgentOptions(
            files=[str(manifest)],
            directory=str(directory / "agent"),
            node_name="demo-node",
            json=args.json,
            seconds=args.seconds,
        )
        (directory / "agent").mkdir()
        return run_agent(options, handlers=[DebugEcho(), mqtt()])
    finally:
        stop.set()
        simulator.join(timeout=5)
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
