"""Releasing models: approval of pushed candidates (and, later, progressive rollout)."""
