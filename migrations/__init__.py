"""Numbered SQL migrations, applied in order (package data)."""
