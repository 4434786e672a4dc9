"""Hyperparameter tuning: DetectionTuner (TFX's Tuner with an on/off run parameter), its search space and trials."""
