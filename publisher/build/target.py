"""The store a build writes: ``output.store`` (or an override) opened with the build's settings and
``output.storage``'s credentials. One function, used by the client and by every cluster worker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config.models import Pipeline
from ..content_types import content_type
from ..errors import ConfigError
from ..settings import BuildSettings
from ..stores import Store


def storage_options(pipeline: Pipeline) -> dict[str, Any]:
    """s3fs options from ``output.storage``: each field names an environment variable (the data
    manager's own names, read here, when the store is opened: not a Skyshelf knob)."""
    storage = pipeline.output.storage
    options: dict[str, Any] = {"anon": True} if storage.anon else {}
    client: dict[str, Any] = {}
    for name, target in (("endpoint_url_env", "endpoint_url"), ("region_env", "region_name"), ("profile_env", "profile"),
                          ("access_key_id_env", "key"), ("secret_access_key_env", "secret"), ("session_token_env", "token")):
        variable = getattr(storage, name)
        if variable is None:
            continue
        if variable not in os.environ:
            raise ConfigError(f"{pipeline.line_of('output', 'storage', name)}: output.storage.{name}: environment variable {variable!r} is not set")
        value = os.environ[variable]
        (client if target in ("endpoint_url", "region_name") else options)[target] = value
    if client:
        options["client_kwargs"] = client
    return options


def resolve_store(pipeline: Pipeline, override: str | None = None, settings: BuildSettings | None = None) -> Store:
    """The pipeline's store (or ``override``), opened with ``settings``' store options (default:
    the environment's, read now)."""
    url = override or pipeline.output.store
    if "://" not in url and not Path(url).is_absolute():
        url = str(pipeline.base_dir / url)
    options = (settings or BuildSettings.from_env()).store_options()
    return Store(url, content_type=content_type, **options, **(storage_options(pipeline) if "://" in url else {}))
