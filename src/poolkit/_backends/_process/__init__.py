"""Process mode: parent side, child side, wire format."""
