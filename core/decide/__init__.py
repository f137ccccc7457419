"""The decision desk."""
