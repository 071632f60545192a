"""A plug-in whose library is not installed: loading it fails, and Skyshelf only warns."""

from __future__ import annotations

import skyshelf_example_missing_library  # noqa: F401

BrokenReader = None
