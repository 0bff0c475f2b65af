"""Database access: engine, migrations and the keyword-only functions that read and write rows."""
