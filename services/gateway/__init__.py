"""Gateway: the only public surface. Speaks the Mastodon client API and the streaming API, authenticates,
limits, and forwards to the services that own each piece of domain."""
