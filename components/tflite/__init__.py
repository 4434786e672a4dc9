"""TFLite models of an exported detector: float32, float16 and full-integer int8, checked before they ship."""
