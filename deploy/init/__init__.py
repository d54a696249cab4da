"""Init jobs run before the services start (the schema migration)."""
