"""The first contact with PixelDojo, diagnosed, and the report the web shows."""
