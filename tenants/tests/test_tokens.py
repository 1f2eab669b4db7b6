"""The one parser of 'Authorization: Token <key>' answers every shape of header the same way."""

import pytest

from tenants.tokens import TokenHeaderError, TokenUsers, token_key_parse


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Token abc123", "abc123"),
        ("token  abc123", "abc123"),  # DRF splits on runs of whitespace
        ("", None),
        ("Basic dXNlcjpwYXNz", None),  # another scheme: not ours to refuse
        ("Bearer", None),
    ],
)
def test_token_headers_are_parsed(header, key):
    assert token_key_parse(header) == key


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("abc123", "expected 'Authorization: Token <key>'"),  # the bare key
        ("Token", "expected 'Authorization: Token <key>'"),
        ("Token a b", "expected 'Authorization: Token <key>'"),
        ("Token k\xe9y", "non-ASCII key"),
    ],
)
def test_malformed_token_headers_say_what_is_wrong(header, message):
    with pytest.raises(TokenHeaderError, match=message):
        token_key_parse(header)


def test_the_key_user_memo_is_bounded_and_forgets():
    memo = TokenUsers(capacity=2)
    memo.remember("a", 1)
    memo.remember("b", 2)
    assert (memo.recall("a"), memo.recall("b")) == (1, 2)
    memo.remember("c", 3)  # full: cleared, then remembered
    assert (memo.recall("a"), memo.recall("c")) == (None, 3)
    memo.forget("c")
    assert memo.recall("c") is None
