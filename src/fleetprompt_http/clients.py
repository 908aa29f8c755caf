"""Which address a request comes from: the peer, or what trusted proxies say.

Rate limits of anonymous calls and failed authentications count the client
address. ``X-Forwarded-For`` is a request header anyone can write, so it is
believed only when the connection comes from a proxy the operator listed in
``FLEETPROMPT_TRUSTED_PROXIES`` (addresses or networks; default: nobody).
Then the header is read from the right — each trusted proxy appends the
address it received the request from — and the first address that is not a
trusted proxy is the client. Values a client put in front of the header are
never reached. An entry that is not an IP address ends the walk at the proxy
that passed it on.

The server reads the header itself (``fleetprompt serve`` turns uvicorn's own
proxy handling off), so the rule is the same whatever server runs the app.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, Final

import attrs

__all__ = ["TrustedProxies", "parse_networks"]

_FORWARDED_FOR: Final = b"x-forwarded-for"
_STATE_KEY: Final = "fleetprompt.client"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.5``, ``10.0.0.0/8``, ``::1`` ... as networks; ``ValueError`` naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@attrs.frozen
class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` is believed (none by default)."""

    networks: tuple[Network, ...] = ()

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def client(self, scope: Any) -> str | None:
        """The client address of the request in ``scope`` (computed once per request)."""
        state = scope.setdefault("state", {})
        if _STATE_KEY in state:
            cached: str | None = state[_STATE_KEY]
            return cached
        state[_STATE_KEY] = found = self._client(scope)
        return found

    def _client(self, scope: Any) -> str | None:
        peer = scope.get("client")
        host: str | None = peer[0] if peer else None
        if not self.networks or host is None or not self.trusts(_address(host)):
            return host
        hops = [
            hop
            for name, value in scope.get("headers", ())
            if name.lower() == _FORWARDED_FOR
            for hop in value.decode("latin-1").split(",")
        ]
        client = host
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return client  # garbage: stop at the proxy that passed it on
            client = str(address)
            if not self.trusts(address):
                return client
        return client
