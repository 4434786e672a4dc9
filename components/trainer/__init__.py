"""Training: the input pipeline, the training loop, export, and the thin TFX `run_fn` that calls them."""
