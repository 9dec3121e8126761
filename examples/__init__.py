"""Bundled example data and scripts (import name ``trirl.examples``)."""
