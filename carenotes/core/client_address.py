"""The caller's IP address, the one rule for every per-address limit (token guessing, sign-in).

By default it is ``REMOTE_ADDR``, the peer of the TCP connection: nothing a client writes in
a header can change it. Behind proxies the peer is the nearest proxy, and each proxy appends
the address it received the request from to ``X-Forwarded-For``; with
``TRUSTED_PROXY_COUNT = n`` (``DJANGO_TRUSTED_PROXY_COUNT``; 1 by default when
``DJANGO_BEHIND_TLS_PROXY`` is on) the caller is the n-th entry from the right. Entries
further left were written by the client and are never read.
"""

import ipaddress

from django.conf import settings

FORWARDED_FOR_META_KEY = "HTTP_X_FORWARDED_FOR"


def client_address(request) -> str:
    """Return the caller's IP address (``REMOTE_ADDR`` unless trusted proxies say otherwise).

    ``request`` is a Django HttpRequest or a DRF Request. An X-Forwarded-For with fewer
    entries than trusted proxies, or whose entry is not an IP address, is ignored: the
    answer is then ``REMOTE_ADDR`` (a proxy's), which errs towards limiting more.
    """
    meta = request.META
    remote = meta.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in meta.get(FORWARDED_FOR_META_KEY, "").split(",")]
    if len(hops) < proxies or not hops[-proxies]:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-proxies]))
    except ValueError:
        return remote
