"""Backends, one module each, loaded by name."""
