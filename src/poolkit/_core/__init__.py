"""The engine and what drives it: no backend is imported here."""
