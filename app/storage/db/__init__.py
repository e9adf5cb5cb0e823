"""The database: engine and sessions, tables, SQLite's and PostgreSQL's own code, migrations."""
