"""The `seedream-playground` command."""
