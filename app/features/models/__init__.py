"""PixelDojo's models: the catalogue, live schemas, team presets, key and rate state."""
