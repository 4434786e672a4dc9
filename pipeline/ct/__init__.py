"""Continuous training: spans, drift, staleness and live-quality triggers, and the guarded retraining."""
