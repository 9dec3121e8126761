"""Environments for trirl (import name ``trirl.envs``)."""
