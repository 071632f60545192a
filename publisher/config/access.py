"""pipeline.yml's ``access`` section: who may read what once published.

Nodes get tags from ``rules[].access_tags`` (inherited down the tree, :mod:`publisher.auth.tags`);
this section says what untagged nodes are, which tags a signed-in caller gets from its identity
provider's groups (or its subject), and which provider signs the tokens. API keys carry their own
tags (``publish keys create --tags``). Nothing here is a secret: the build copies it into the
release's private catalog, where the handlers read it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..auth.principal import PUBLIC, TAG, TAG_RULE


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Oidc(_Model):
    """An OpenID Connect provider whose access tokens (JWTs) the handlers accept as Bearer tokens."""

    issuer: str = Field(description="The provider's issuer URL (its /.well-known/openid-configuration is read).")
    audience: str = Field(description="The `aud` the tokens must carry: this API's identifier at the provider.")
    client_id: str = Field(description="The public client the tiled client logs in with (device-code flow).")
    browser_client_id: str | None = Field(default=None, description=(
        "The public client the browse page signs in with (authorization code + PKCE, redirect URI `<site>/`); "
        "unset: the page offers API keys only."))
    groups_claim: str = Field(default="groups", description="The claim listing the caller's groups (Cognito: cognito:groups).")
    algorithms: list[Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]] = Field(
        default_factory=lambda: ["RS256"], min_length=1, description="Signature algorithms accepted (never HS* or none).")
    jwks_uri: str | None = Field(default=None, description="The key set; default: the one the discovery document names.")

    @field_validator("issuer")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"issuer must be an http(s) URL, got {value!r}")
        return value  # exactly as the provider names itself (Auth0's and Entra's end in "/": tokens' iss is compared as is)


def checked_tags(tags: list[str], what: str) -> list[str]:
    """``tags`` as given, or a ValueError naming ``what`` holds which bad ones."""
    bad = [t for t in tags if not TAG.fullmatch(t)]
    if bad:
        raise ValueError(f"{what}: {TAG_RULE}, not {', '.join(map(repr, bad))}")
    return tags


def _tags(value: dict[str, list[str]], what: str) -> dict[str, list[str]]:
    for name, tags in value.items():
        checked_tags(tags, f"{what} {name!r}")
        if PUBLIC in tags:
            raise ValueError(f"{what} {name!r}: {PUBLIC!r} is everyone's already; map groups to other tags")
    return value


class Access(_Model):
    """Who may read what. Without any ``access_tags`` rule and with ``default`` unset the catalog
    is public, as before; once any rule sets tags, untagged nodes are private unless ``default: public``."""

    default: Literal["public", "private"] | None = Field(
        default=None, description="What untagged nodes are; unset: private once any rule sets access_tags, else public.")
    groups: dict[str, list[str]] = Field(default_factory=dict, description="Identity-provider group → the tags its members get.")
    subjects: dict[str, list[str]] = Field(default_factory=dict, description="A token's subject → tags it gets (beyond its groups').")
    oidc: Oidc | None = None

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return _tags(value, "group")

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return _tags(value, "subject")

    def published(self) -> dict[str, Any]:
        """What the handlers need, as the private catalog holds it (no secrets in it)."""
        return self.model_dump(exclude={"default"})
