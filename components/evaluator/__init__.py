"""DetectionEvaluator: TFMA COCO metrics and blessing against the model in production."""
