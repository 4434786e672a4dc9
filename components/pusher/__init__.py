"""DetectionPusher and the push destination (model store) it writes."""
