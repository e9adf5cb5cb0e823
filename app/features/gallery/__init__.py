"""The gallery: listing and search, trash, collections, usage, downloads, compare."""
