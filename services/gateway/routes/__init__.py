"""Public routes of the Mastodon client API, one module per area."""
