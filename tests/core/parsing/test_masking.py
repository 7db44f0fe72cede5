"""The combined masking regex: what it masks, what it leaves, user masks and their errors."""

import pytest

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.masking import PARAM, Masker, MaskingConfig


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PacketResponder 1 for block blk_-388650490641 terminating", "PacketResponder <*> for block <*> terminating"),
        ("Received block blk_77 of size 67108864 from /10.251.42.84:50010", "Received block <*> of size <*> from /<*>"),
        ("instance 550e8400-e29b-41d4-a716-446655440000 ready", "instance <*> ready"),
        ("addr fe80::1 and ::1 and 2001:db8:0:0:0:0:2:1", "addr <*> and <*> and <*>"),
        ("mac 00:1a:2b:3c:4d:5e up", "mac <*> up"),
        ("ptr 0xDEADBEEF sha 9f86d081884c7d65 commit a94a8fe5cc", "ptr <*> sha <*> commit <*>"),
        ("read /var/log/app-1/x.log done", "read <*> done"),
        ("GET http://example.com/a?b=1 ok", "GET http:<*> ok"),
        ("took 12ms for 64KB at -3.5 and +7", "took <*> for <*> at <*> and <*>"),
        ("at 2005-06-03-15.42.50.675872 or 12:01:01", "at <*> or <*>"),
        ("x=42 (uid=0) [7]", "x=<*> (uid=<*>) [<*>]"),
        ("part-00001 job_201510_0003", "part-<*> job_<*>_<*>"),
    ],
)
def test_masks_variable_parts(masker: Masker, text: str, expected: str) -> None:
    assert masker.mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "user123 logged in",
        "ipv4 and eth0 with sha256",
        "std::string Foo::bar",
        "deadbeef cafe",
        "log4j and utf8",
        "no digits at all",
    ],
)
def test_leaves_names_with_digits_and_words(masker: Masker, text: str) -> None:
    assert masker.mask(text) == text


def test_find_names_each_mask(masker: Masker) -> None:
    found = masker.find("blk_-5 10.0.0.1:80 fe80::1 0x1f 12 /a/b http://h/p")
    assert [name for name, _ in found] == ["blk", "ipv4", "ipv6", "hex", "num", "path", "url"]
    assert found[1] == ("ipv4", "10.0.0.1:80")


def test_user_masks_go_first() -> None:
    masker = Masker(MaskingConfig(extra=(("ticket", r"TCK-\d+"), ("host", r"node\d+"))))
    assert masker.mask("ticket TCK-123 on node7 code 5") == "ticket <*> on <*> code <*>"
    assert [n for n, _ in masker.find("TCK-1 node2")] == ["ticket", "host"]


def test_disabled_builtin_is_not_applied() -> None:
    masker = Masker(MaskingConfig(disabled=("num",)))
    assert masker.mask("size 42 from 10.0.0.1") == f"size 42 from {PARAM}"


def test_fingerprint_follows_the_masks() -> None:
    assert Masker().fingerprint == Masker().fingerprint
    assert Masker().fingerprint != Masker(MaskingConfig(extra=(("a", "zz"),))).fingerprint


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((("bad", "(unclosed"),), "invalid regex"),
        ((("empty", "x*"),), "matches the empty string"),
        ((("num", r"\d"),), "used twice"),
        ((("a b", "x"),), "mask name"),
        ((("a__b", "x"),), "mask name"),
        ((("ref", r"(a)\1"),), "back-references"),
    ],
)
def test_bad_user_masks_are_named(extra: tuple, message: str) -> None:
    with pytest.raises(LogWardenError, match=message):
        Masker(MaskingConfig(extra=extra))


def test_unknown_disabled_mask_is_an_error() -> None:
    with pytest.raises(LogWardenError, match="nosuch"):
        Masker(MaskingConfig(disabled=("nosuch",)))
