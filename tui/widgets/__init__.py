"""Reusable widgets of the ftod dashboard; none of them reads the store."""
