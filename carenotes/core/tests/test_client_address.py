"""The caller's address: REMOTE_ADDR, unless trusted proxies are configured; how it is counted."""

import pytest
from django.test import RequestFactory

from carenotes.core.auth_throttle import address_group
from carenotes.core.client_address import client_address

PEER = "10.0.0.9"


def _request(forwarded_for: str | None = None):
    extra = {"REMOTE_ADDR": PEER}
    if forwarded_for is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return RequestFactory().get("/", **extra)


def test_without_trusted_proxies_the_peer_is_the_caller_whatever_the_headers_say(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(_request()) == PEER
    assert client_address(_request("203.0.113.7")) == PEER


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "caller"),
    [
        # The nearest proxy appended the address it saw; anything left of it is the client's.
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        # A CDN, then our proxy: the CDN's entry names the caller.
        (2, "6.6.6.6, 203.0.113.7, 198.51.100.2", "203.0.113.7"),
        (1, "2001:DB8::1", "2001:db8::1"),
    ],
)
def test_behind_trusted_proxies_the_caller_is_the_entry_they_appended(
    settings, proxies, forwarded_for, caller
):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_address(_request(forwarded_for)) == caller


@pytest.mark.parametrize("forwarded_for", [None, "", "203.0.113.7", "not-an-address", "1.2.3.4, "])
def test_a_missing_short_or_malformed_forwarded_for_falls_back_to_the_peer(settings, forwarded_for):
    settings.TRUSTED_PROXY_COUNT = 2 if forwarded_for == "203.0.113.7" else 1
    assert client_address(_request(forwarded_for)) == PEER


def test_the_tls_proxy_setting_trusts_one_proxy_by_default(settings):
    # carenotes/settings.py: DJANGO_TRUSTED_PROXY_COUNT defaults to 1 behind the TLS proxy.
    expected = 1 if settings.SECURE_PROXY_SSL_HEADER else 0
    assert expected == settings.TRUSTED_PROXY_COUNT


@pytest.mark.parametrize(
    ("address", "group"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # One IPv6 client usually holds a whole /64: its addresses count together.
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("", ""),
    ],
)
def test_token_failures_count_per_ipv4_address_and_per_ipv6_64(address, group):
    assert address_group(address) == group
