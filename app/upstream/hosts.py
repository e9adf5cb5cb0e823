"""Which hosts images may be downloaded from.

The API's own host, any sub-domain of its registrable domain (`temp.pixeldojo.ai`
for `pixeldojo.ai`), and the hosts a person names in PLAYGROUND_IMAGE_HOSTS
(`*.example.com` names every sub-domain of example.com). Nothing else: an image
URL is chosen by the upstream's answer, and the app must not fetch whatever an
answer points at.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IMAGE_HOSTS_SETTING = "PLAYGROUND_IMAGE_HOSTS"
# Second-level labels under which a country's domains are registered (example.co.uk):
# there the registrable domain has three labels, not two.
_SECOND_LEVEL_SUFFIXES = frozenset({"ac", "co", "com", "edu", "gov", "net", "org", "or", "ne"})


def registrable_domain(host: str) -> str:
    """The domain a host's owner registered: `pixeldojo.ai` for `api.pixeldojo.ai`.

    A close reading of the public-suffix idea without its list: the last two labels,
    or three under a country's second-level suffix (`co.uk`). An IP address or a
    single-label name (`localhost`) is its own domain, with no sub-domains.
    """
    host = host.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    labels = host.split(".")
    if len(labels) < 2:
        return host
    keep = 2
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL_SUFFIXES:
        keep = 3
    return ".".join(labels[-keep:])


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class ImageHosts:
    def __init__(self, api_host: str, extra_hosts: Iterable[str] = ()) -> None:
        self.api_host = api_host.lower()
        self.domain = registrable_domain(self.api_host)
        self.extra = frozenset(host.strip().lower() for host in extra_hosts if host.strip())

    def allows(self, host: str) -> bool:
        host = host.rstrip(".").lower()
        if not host:
            return False
        if host in (self.api_host, self.domain) or host in self.extra:
            return True
        if not _is_ip(self.domain) and host.endswith("." + self.domain):
            return True
        return any(
            pattern.startswith("*.") and host.endswith(pattern[1:]) for pattern in self.extra
        )

    def describe(self) -> str:
        """Where images may come from, in words."""
        if _is_ip(self.domain) or "." not in self.domain:
            allowed = self.api_host
        else:
            allowed = f"{self.domain} and its sub-domains"
        if self.extra:
            allowed += ", and " + ", ".join(sorted(self.extra))
        return allowed

    def refusal(self, host: str) -> str:
        """Why an image from `host` is not downloaded, and the setting that would allow it."""
        shown = host or "(none)"
        return (
            f"the image host {shown!r} is not an allowed host (images are downloaded from "
            f"{self.describe()}); to allow it, add {shown} to {IMAGE_HOSTS_SETTING}"
        )
