"""Simulated sound sensors, like the KubeCon booth sensors, for demos and trials.

    python -m akri_sdk_mqtt.simulate --broker mqtt://127.0.0.1:1883 --sensors 4

Sensor `s<i>` joins `i * --join-every` seconds after start, announces itself with
a retained `online` on `booth/s<i>/status` (its last will says `offline`), and
publishes `{"volume": N}` on `booth/s<i>/sound` every `--interval` seconds. The
last sensor has no status topic, like the booth sensors that only publish when
loud: it falls silent after `--silent-after` seconds, so only the silence timeout
notices; at that moment the one before it dies abruptly, so the broker publishes
its last will. Stops after `--seconds` (default: forever).
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from akri_sdk_mqtt.uri import parse_broker_uri

__all__ = ["main"]


class Sensor:
    def __init__(self, name: str, host: str, port: int, *, status: bool = True) -> None:
        self.name = name
        self.status = status
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{name}")
        if status:
            self.client.will_set(f"booth/{name}/status", b"offline", qos=1, retain=True)
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        if status:
            self.client.publish(f"booth/{name}/status", b"online", qos=1, retain=True)
        self.silent = False

    def publish(self) -> None:
        if not self.silent:
            volume = random.randint(40, 90)
            self.client.publish(f"booth/{self.name}/sound", f'{{"volume": {volume}}}'.encode())

    def die(self) -> None:
        """Drop the connection without DISCONNECT: the broker sends the last will."""
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()

    def stop(self) -> None:
        if self.status:  # clear the retained status so the next run starts clean
            topic = f"booth/{self.name}/status"
            self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m akri_sdk_mqtt.simulate", description=__doc__)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--sensors", type=int, default=4)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--join-every", type=float, default=2.0)
    parser.add_argument("--silent-after", type=float, default=15.0)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args(argv)
    uri = parse_broker_uri(args.broker)
    if uri.tls or uri.websocket:
        parser.error("the simulator speaks plain mqtt:// only")
    sensors: list[Sensor] = []
    started = time.monotonic()
    stop = threading.Event()
    try:
        while not stop.is_set():
            now = time.monotonic() - started
            if args.seconds is not None and now >= args.seconds:
                break
            while len(sensors) < args.sensors and now >= len(sensors) * args.join_every:
                last = len(sensors) == args.sensors - 1
                sensors.append(Sensor(f"s{len(sensors)}", uri.host, uri.port, status=not last))
                kind = "no status topic" if last else "status online, will offline"
                print(f"{now:6.1f}s  {sensors[-1].name} joined ({kind})", flush=True)
            if now >= args.silent_after and len(sensors) >= 2 and not sensors[-1].silent:
                sensors[-1].silent = True
                print(f"{now:6.1f}s  {sensors[-1].name} fell silent", flush=True)
                sensors[-2].die()
                sensors[-2].silent = True
                print(f"{now:6.1f}s  {sensors[-2].name} died (last will: offline)", flush=True)
            for sensor in sensors:
                sensor.publish()
            stop.wait(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        for sensor in sensors:
            if sensor.client.is_connected():
                sensor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
