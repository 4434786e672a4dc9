"""Serving detx models: the local model server (`detx serve`), the gRPC client and the web page.

The TF Serving manifests for Kubernetes are in serving/k8s/.
"""
