"""Serving detx models: the local model server (`detx serve`), the gRPC client, the web page; TF Serving manifests in k8s/."""
