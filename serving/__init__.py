"""Serving detx models: TF Serving manifests, the local model server and clients (not built yet)."""
