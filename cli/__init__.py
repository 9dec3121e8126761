"""Command-line interface (import name ``trirl.cli``)."""
