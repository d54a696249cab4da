"""Timeline service: home and account timelines, read back and hydrated."""
