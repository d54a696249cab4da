"""Kicau services, one package per process."""
