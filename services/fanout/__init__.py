"""Fanout service: status and follow events in, home timelines and stream deliveries out."""
