"""The consent log: events, keyword policy, numbers, times and the append-only store.

This package imports nothing from ``projections`` or ``api`` and never imports litestar.
"""
