"""The caller of a request and Tiled's tag rule, with the standard library only (every handler
imports it at cold start)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: The reserved tag: anyone, signed in or not, may read a node that carries it.
PUBLIC = "public"
#: What a tag may be, wherever one is given (rules, groups, subjects, API keys): the build keys
#: counts by tags joined with ``|`` and chains with ``>`` (a rule tag ``staff|public`` counted as
#: public, and anonymous callers were listed a private node).
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
TAG_RULE = "tags are letters, digits and ._:@- (at most 128, starting with a letter or digit)"
#: Tiled's read scopes: metadata, search and distinct need the first; anything that returns data the second.
READ_METADATA, READ_DATA = "read:metadata", "read:data"
READ_SCOPES = frozenset({READ_METADATA, READ_DATA})


@dataclass(frozen=True)
class Principal:
    """Who is asking: ``kind`` is ``anonymous``, ``apikey`` or ``token``; ``name`` a key's id or a
    token's subject, for logs (never a secret); ``tags`` what it was granted; ``scopes`` what it
    may do with what it can read (an API key may have fewer than both read scopes)."""

    kind: str
    name: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = READ_SCOPES

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def reach(self) -> frozenset[str]:
        """The tags a node needs one of for this caller to read it (``public`` included)."""
        return self.tags | {PUBLIC}

    def can_read(self, tags: Sequence[str] | None) -> bool:
        """Whether a node with these (own, effective) tags is readable; ``None`` is a node of a
        catalog without access rules, which is public."""
        return tags is None or not self.reach.isdisjoint(tags)

    def can_read_chain(self, chain: Iterable[Sequence[str]]) -> bool:
        """Whether every tag set along a path (the node's ancestors and itself) is readable."""
        return all(self.can_read(tags) for tags in chain)


ANONYMOUS = Principal("anonymous")


def granted(groups: Iterable[str], subject: str | None, by_group: Mapping[str, list[str]],
            by_subject: Mapping[str, list[str]]) -> frozenset[str]:
    """The tags a signed-in caller gets: its identity provider's groups and its subject, mapped
    by pipeline.yml's ``access.groups`` and ``access.subjects``."""
    tags = {t for g in groups for t in by_group.get(g, [])}
    return frozenset(tags | set(by_subject.get(subject, []) if subject else ()))


def chain_id(chain: Sequence[Sequence[str]]) -> str | None:
    """The name of an access class: ``None`` when anyone may read along the whole chain (the data
    goes under the public prefix), else a short stable digest of the chain's tag sets, which
    names the private prefix its nodes' data share (so a grant is one prefix per class)."""
    if ANONYMOUS.can_read_chain(chain):
        return None
    text = ">".join("|".join(sorted(set(tags))) for tags in chain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
