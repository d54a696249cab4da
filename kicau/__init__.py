"""Kicau's shared library: the contracts several services must agree on.

Event schemas and topic names, id generation, settings, client factories, Redis key names, Mastodon entity
shapes and metrics helpers. No business rules live here: those belong to the service that owns them.
"""

from importlib.metadata import version

# The project's version (pyproject.toml's, as installed), shown by the instance and the admin dashboard.
__version__ = version("kicau")
