"""DuckDB store: schema, migrations, typed reads and writes. All SQL in ftod lives here.

This package imports neither textual nor torch (tests/test_layers.py checks it).
"""
