"""The database and the blob stores: engines, tables, each database's seam, image intake."""
