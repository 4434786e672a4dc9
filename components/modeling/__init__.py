"""SSD MobileNetV2-FPNLite in Keras 3: presets, anchors, box coding, matching, losses, network, post-processing.

Plain modules that know nothing of TFX; the Trainer's `run_fn` calls them.
"""
