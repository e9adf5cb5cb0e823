"""Where image bytes live: the `BlobStore` protocol and its stores."""
