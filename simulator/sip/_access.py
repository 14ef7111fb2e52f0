"""Who may place calls for an org over SIP: its digest credentials, or its trusted addresses.

An org's calls are placed only by a request that either comes from one of
the org's trusted addresses (`trusted`: IP addresses or networks, e.g. the
org's SBC) or answers a digest challenge with the org's credentials
(`_digest`).  An org with neither cannot be called through SIP at all (403),
as an org without a token cannot log in to the msgpack protocol.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ._digest import Credentials

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class OrgAccess:
    """One org as the SIP endpoint guards it (index = the org's index in the rating core)."""

    id: str
    credentials: Credentials | None = None
    trusted: tuple[Network, ...] = field(default=())

    def trusts(self, host: str) -> bool:
        """True if `host` (a source IP address) is one of the org's trusted addresses."""
        if not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.trusted)


def networks(texts: list[str] | tuple[str, ...]) -> tuple[Network, ...]:
    """`["10.0.0.0/8", "192.0.2.7"]` as networks; raises ValueError naming a bad entry."""
    out = []
    for text in texts:
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or network") from None
    return tuple(out)
