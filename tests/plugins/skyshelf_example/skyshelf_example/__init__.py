"""A third-party Skyshelf plug-in (tests/test_plugins.py installs it)."""
