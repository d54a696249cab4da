"""Post service: the write side of statuses."""
