"""Seedream Playground: try Seedream 4.5 through the PixelDojo API and keep a shared gallery."""

__version__ = "0.1.0"
