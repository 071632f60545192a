"""Effective access tags (inherited down the tree, overridden below, private by default once any
rule tags) and Tiled's tag rule for a caller, on paths alone."""

from __future__ import annotations

from types import SimpleNamespace

from publisher.auth.principal import ANONYMOUS, PUBLIC, Principal, chain_id
from publisher.auth.tags import AccessRules


def rule(match: str, tags: list[str] | None) -> SimpleNamespace:
    return SimpleNamespace(match=match, access_tags=tags)


RULES = [rule("proposals", [PUBLIC]), rule("proposals/p1", ["p1"]), rule("proposals/p1/thumbs", [PUBLIC]),
         rule("proposals/p2/**", ["p2", "staff"]), rule("open", [PUBLIC]), rule("misc", None)]


def test_tags_are_inherited_and_overridden_below() -> None:
    access = AccessRules(RULES)
    assert access.tagged and access.tags("") == []
    assert access.tags("proposals") == [PUBLIC] and access.tags("proposals/p1/scan/data") == ["p1"]
    assert access.tags("proposals/p1/thumbs/t.png") == [PUBLIC]
    assert access.tags("proposals/p2") == [PUBLIC] and access.tags("proposals/p2/a") == ["p2", "staff"]
    assert access.tags("open/a/b") == [PUBLIC]


def test_untagged_nodes_are_private_once_any_rule_tags() -> None:
    access = AccessRules(RULES)
    assert access.tags("misc/x") == [] and access.tags("elsewhere") == []
    assert not ANONYMOUS.can_read(access.tags("elsewhere"))
    assert AccessRules(RULES, default="public").tags("elsewhere") == [PUBLIC]


def test_a_catalog_without_tags_is_unchanged_unless_made_private() -> None:
    plain = AccessRules([rule("a", None)])
    assert not plain.tagged and plain.tags("a/b") is None and plain.chain("a/b") == [] and plain.access_class("a/b") is None
    assert ANONYMOUS.can_read(None)
    private = AccessRules([], default="private")
    assert private.tagged and private.tags("a") == [] and private.access_class("a") is not None


def test_a_node_is_readable_when_every_tag_set_above_it_is() -> None:
    access = AccessRules(RULES)
    p1, p2, staff = (Principal("apikey", "k", frozenset({t})) for t in ("p1", "p2", "staff"))
    thumbs = access.chain("proposals/p1/thumbs/t.png")
    assert thumbs == [[PUBLIC], ["p1"], [PUBLIC]]
    assert p1.can_read_chain(thumbs) and not ANONYMOUS.can_read_chain(thumbs) and not p2.can_read_chain(thumbs)
    assert staff.can_read_chain(access.chain("proposals/p2/x")) and p2.can_read_chain(access.chain("proposals/p2/x"))
    assert ANONYMOUS.can_read_chain(access.chain("open/a")) and ANONYMOUS.can_read_chain(access.chain("proposals"))


def test_access_classes_name_prefixes_by_chain() -> None:
    access = AccessRules(RULES)
    assert access.access_class("open/a") is None and access.access_class("proposals") is None
    assert access.access_class("proposals/p1/a") == access.access_class("proposals/p1/b/c") != access.access_class("proposals/p1/thumbs/t")
    assert access.access_class("proposals/p2/a") != access.access_class("proposals/p1/a")
    assert chain_id([["b", "a"]]) == chain_id([["a", "b"]])  # a tag set, not a list
