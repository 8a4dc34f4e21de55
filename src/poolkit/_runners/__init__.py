"""Runners: the Runner protocol, the shared base, the built-in runners."""
