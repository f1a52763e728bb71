"""Parse `mqttBrokerUri` the way the upstream handler accepts it, and refuse the rest.

Upstream (rumqttc 0.22 with its `url` feature) takes `mqtt://` and `tcp://` (plain,
port 1883), `mqtts://` and `ssl://` (TLS, 8883), and query options such as
`client_id` and `keep_alive_secs`. We take the same, plus `ws://` and `wss://`
(MQTT over WebSocket, ports 80/443, path `/mqtt` unless the URI has one), which
upstream's build leaves out. A URI that cannot be used is a `ValueError` whose
text names the problem; it never repeats a password that was in the URI.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote

__all__ = ["SCHEMES", "BrokerUri", "parse_broker_uri"]

# scheme -> (tls, websocket, default port)
SCHEMES: dict[str, tuple[bool, bool, int]] = {
    "mqtt": (False, False, 1883),
    "tcp": (False, False, 1883),
    "mqtts": (True, False, 8883),
    "ssl": (True, False, 8883),
    "ws": (False, True, 80),
    "wss": (True, True, 443),
}
DEFAULT_WEBSOCKET_PATH = "/mqtt"
DEFAULT_KEEPALIVE = 60  # rumqttc's default, so upstream Configurations behave the same
MAX_URI_CHARS = 2048

# rumqttc tuning options that have no meaning for paho; accepted so that an
# upstream Configuration keeps working, and otherwise ignored.
_IGNORED_OPTIONS = frozenset(
    {
        "clean_start",
        "clean_session",
        "max_incoming_packet_size_bytes",
        "max_outgoing_packet_size_bytes",
        "request_channel_capacity_num",
        "max_request_batch_num",
        "pending_throttle_usecs",
        "inflight_num",
        "conn_timeout_secs",
    }
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class BrokerUri:
    """A parsed broker URI. `public` is safe to log and to put in device properties."""

    scheme: str
    host: str
    port: int
    tls: bool
    websocket: bool
    path: str = ""
    client_id: str | None = None
    keepalive: int = DEFAULT_KEEPALIVE
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    public: str = ""

    @property
    def websocket_path(self) -> str:
        return self.path or DEFAULT_WEBSOCKET_PATH


def _fail(problem: str) -> ValueError:
    return ValueError(f"`mqttBrokerUri` {problem}")


def _split_host_port(hostport: str, default: int) -> tuple[str, int, str]:
    """(host, port, host as written in a URI) from `host[:port]` or `[v6][:port]`."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise _fail("has an IPv6 address without a closing `]`")
        literal, rest = hostport[1:end], hostport[end + 1 :]
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            raise _fail(f"has an invalid IPv6 address [{literal[:60]}]") from None
        host, written = str(address), f"[{literal}]"
    else:
        host, sep, port_text = hostport.partition(":")
        rest = sep + port_text
        if not host:
            raise _fail("has no host (expected scheme://host[:port])")
        if not _HOSTNAME.fullmatch(host):
            raise _fail(f"has an invalid host {host[:60]!r}")
        written = host
    if not rest:
        return host, default, written
    if not rest.startswith(":") or not _PORT.fullmatch(rest[1:]):
        raise _fail(f"has an invalid port {rest[1:][:20]!r} (expected a number 1-65535)")
    port = int(rest[1:])
    if not 1 <= port <= 65535:
        raise _fail(f"has port {port}, outside 1-65535")
    return host, port, written


def _options(query: str) -> tuple[str | None, int]:
    client_id: str | None = None
    keepalive = DEFAULT_KEEPALIVE
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _fail("has a malformed query string") from None
    for name, value in pairs:
        if name == "client_id":
            if not _CLIENT_ID.fullmatch(value):
                raise _fail(
                    "option client_id must be 1-32 letters, digits, '_', '.' or '-' "
                    "(it prefixes the unique client id of each connection)"
                )
            client_id = value
        elif name == "keep_alive_secs":
            if not value.isdigit() or not 5 <= int(value) <= 65535:
                raise _fail("option keep_alive_secs must be a whole number of seconds, 5-65535")
            keepalive = int(value)
        elif name not in _IGNORED_OPTIONS:
            raise _fail(f"has an unknown option {name[:40]!r}; known: client_id, keep_alive_secs")
    return client_id, keepalive


def parse_broker_uri(text: str) -> BrokerUri:
    """Parse and check a broker URI; ValueError (naming the key) when it cannot be used."""
    if len(text) > MAX_URI_CHARS:
        raise _fail(f"is {len(text)} characters; the limit is {MAX_URI_CHARS}")
    if not text or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise _fail("must be a non-empty URI without spaces or control characters")
    match = _SCHEME.match(text)
    if match is None:
        raise _fail("must look like mqtt://host:port (schemes: " + ", ".join(SCHEMES) + ")")
    scheme = match[1].lower()
    if scheme not in SCHEMES:
        raise _fail(f"has unsupported scheme {scheme[:20]!r}; use one of: {', '.join(SCHEMES)}")
    tls, websocket, default_port = SCHEMES[scheme]
    rest = text[match.end() :]
    if "#" in rest:
        raise _fail("must not have a #fragment")
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    path = slash + path
    if path not in ("", "/") and not websocket:
        raise _fail(f"has a path {path[:40]!r}; only ws:// and wss:// URIs take one")
    userinfo, at, hostport = authority.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if colon else None
    host, port, written_host = _split_host_port(hostport, default_port)
    client_id, keepalive = _options(query)
    public = f"{scheme}://{written_host}"
    if hostport != written_host:
        public += f":{port}"
    public += quote(path, safe="/:@!$&'()*+,;=-._~%")
    if query:
        public += "?" + query
    return BrokerUri(
        scheme=scheme,
        host=host,
        port=port,
        tls=tls,
        websocket=websocket,
        path=path if websocket else "",
        client_id=client_id,
        keepalive=keepalive,
        username=username,
        password=password,
        public=public,
    )
