"""Where a webhook may be sent: the SSRF rules, checked at registration and again at delivery.

Unless ``WEBHOOK_ALLOW_PRIVATE_TARGETS`` is on:
* the URL is ``https://`` with a host name or a public IP literal, no user or password;
* every address the host resolves to must be globally routable: loopback
  (127.0.0.0/8, ::1), private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
  (169.254/16 with the cloud metadata address 169.254.169.254, fe80::/10), shared
  (100.64/10, which holds some clouds' metadata), unspecified, multicast and
  reserved ranges are refused, as is an IPv4 address mapped into IPv6;
* at delivery the host is resolved again and the connection goes to an address
  that passed the check (``Target.address``), so a DNS answer that changes after
  registration (rebinding) cannot reach an internal address.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from webhooks import conf

MAX_URL_LENGTH = 2000
# Checked by name too, whatever its ranges say in some future Python.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)


class TargetRefused(Exception):
    """The URL may not be used as a webhook target; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (IDNA-encoded), for the Host header and TLS
    port: int
    path: str  # path and query string
    address: str | None  # the checked IP to connect to; None when private targets are allowed

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse(url: str) -> Target:
    """Check the URL's form (not its addresses)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"Send a URL of 1 to {MAX_URL_LENGTH} characters.")
    if not url.isascii() or any(char.isspace() or ord(char) < 32 for char in url):
        raise TargetRefused("The URL must be ASCII without spaces or control characters (punycode for IDN hosts).")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("The URL is malformed.") from exc
    allowed = ("https", "http") if conf.allow_private_targets() else ("https",)
    if parts.scheme not in allowed:
        raise TargetRefused("The URL must start with https://.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("The URL must not carry a user name or password.")
    host = parts.hostname
    if not host:
        raise TargetRefused("The URL has no host.")
    if parts.fragment:
        raise TargetRefused("The URL must not have a #fragment.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(
        scheme=parts.scheme,
        host=host,
        port=port or (443 if parts.scheme == "https" else 80),
        path=path,
        address=None,
    )


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and (address.ipv4_mapped or address.sixtofour):
        return False  # an IPv4 address in disguise: refuse rather than unwrap every form
    if address in METADATA_ADDRESSES:
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"The host {host!r} does not resolve.") from exc
    # The scope id (fe80::1%eth0) is not part of the address. An IPv4 or IPv6 sockaddr starts with the host as
    # a string (typeshed's union also covers AF_PACKET's int).
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def resolve(url: str) -> Target:
    """The URL's target, with the checked address to connect to; raises TargetRefused."""
    target = parse(url)
    if conf.allow_private_targets():
        return target
    addresses = _addresses(target.host, target.port)
    if not addresses:
        raise TargetRefused(f"The host {target.host!r} does not resolve.")
    refused = [str(address) for address in addresses if not is_public(address)]
    if refused:
        raise TargetRefused(
            f"The host {target.host!r} resolves to a loopback, private, link-local or reserved address "
            f"({', '.join(sorted(set(refused)))})."
        )
    return Target(scheme=target.scheme, host=target.host, port=target.port, path=target.path, address=str(addresses[0]))


def check(url: str) -> None:
    """Registration: the same rules as delivery."""
    resolve(url)
