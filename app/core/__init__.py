"""The ground floor: settings, errors, the data dir, packaged files. Imports nothing of the app."""
