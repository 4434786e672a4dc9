"""Helpers for detx's tests and benchmarks: synthetic data and faults, detectors of known quality, a small preset.

- `testing.data`: faults injected into a synthetic COCO dataset, Examples
  artifacts (`write_examples`), photos with EXIF orientations;
- `testing.evaluation`: detectors of known quality (`write_oracle_model`);
- `testing.tflite`: a small detector registered as a preset, noisy-weight exports.

Not part of detx: setup.py installs only `detx` (the pipeline, components and
serving folders), so these stay out of the wheel and the pipeline image. Tests
import them from the repository root (pytest's `pythonpath`), benchmarks
through bench/common.py, which puts the root on `sys.path`.
"""
