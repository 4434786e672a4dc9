"""DetectionPusher: publishes blessed models to the push destination (`detx.components.model_store`)."""
