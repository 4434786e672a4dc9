"""A local model server that speaks TF Serving's gRPC API (`detx serve`)."""
