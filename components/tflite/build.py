"""Builds the TFLite models of an exported detector into one folder, all or nothing.

    <output>/detector_float32.tflite
    <output>/detector_float16.tflite
    <output>/detector_int8.tflite            (or rejected/detector_int8.tflite: the gate stopped it)
    <output>/tflite_report.json              (report.py)

Every model carries its metadata and labels (metadata.py). With eval data, each
model's COCO mAP is measured beside the SavedModel's and int8 goes through the
gate (gate.py). The folder appears whole or not at all: everything is written
to a staging folder beside it and renamed into place (on an object store,
where there is no rename, the report is copied last and marks it complete).
The DetectionTFLite component's executor and `detx export tflite` both call `build`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from detx.components import storage
from detx.components.modeling.config import ModelConfig
from detx.components.tflite import inputs
from detx.components.tflite.convert import convert
from detx.components.tflite.evaluate import saved_model_metrics, tflite_metrics
from detx.components.tflite.gate import decide
from detx.components.tflite.interpreter import run_threads
from detx.components.tflite.metadata import ModelInfo, with_metadata
from detx.components.tflite.options import INT8, KINDS, TFLiteOptions
from detx.components.tflite.postprocess_op import PostProcessSettings
from detx.components.tflite.report import REJECTED_DIR, REPORT_FILE, ModelEntry, TFLiteReport
from detx.components.tflite.source import Detector, load_detector

MODEL_FILE = "detector_{kind}.tflite"

Data = str | Sequence[str]


class OutputExistsError(ValueError):
    """The output folder already holds files; nothing is overwritten."""


def variables_bytes(saved_model: str) -> int:
    """Bytes of the SavedModel's variables (its weights), the size the TFLite files are compared with."""
    folder = os.path.join(saved_model, "variables")
    return sum(int(tf.io.gfile.stat(os.path.join(folder, rel)).length) for rel in storage.list_files(folder))


def _check_output(output: str) -> None:
    if tf.io.gfile.exists(output) and (not tf.io.gfile.isdir(output) or tf.io.gfile.listdir(output)):
        raise OutputExistsError(f"{output} exists and is not an empty folder: choose another output or remove it")


def _staging(output: str) -> str:
    if storage.is_local(output):
        local = os.path.abspath(storage.strip_file_scheme(output))
        parent = os.path.dirname(local)
        os.makedirs(parent, exist_ok=True)
        # Beside the output, on the same file system, so the final rename is atomic.
        return tempfile.mkdtemp(prefix=f".{os.path.basename(local)}.staging-", dir=parent)
    return tempfile.mkdtemp(prefix="detx-tflite-")


def _publish(staging: str, output: str) -> None:
    if storage.is_local(output):
        local = os.path.abspath(storage.strip_file_scheme(output))
        if os.path.isdir(local):
            os.rmdir(local)  # empty (checked first): TFX creates an output artifact's folder before the executor runs
        os.rename(staging, local)
    else:
        storage.copy_tree(staging, output, last=REPORT_FILE)


def eval_patterns(data: Data) -> list[str]:
    """TFRecord patterns of eval data: an ExampleGen folder's eval split, a folder of TFRecords, or patterns."""
    if isinstance(data, str):
        return inputs.split_patterns(data, "eval") if tf.io.gfile.isdir(data) else [data]
    return list(data)


def build(
    saved_model: str,
    output: str,
    *,
    kinds: Sequence[str] = KINDS,
    representative: Data | None = None,
    eval_data: Data | None = None,
    options: TFLiteOptions | None = None,
    name: str = "detx",
    log: Callable[[str], None] = lambda _: None,
    configs: Mapping[str, ModelConfig] | None = None,
    detector: Detector | None = None,
) -> TFLiteReport:
    """Converts, describes, evaluates and gates the TFLite models of a detx SavedModel, and writes them to `output`.

    Args:
        saved_model: the exported detector (a pushed version or the Trainer's Format-Serving folder).
        output: the folder to create (absent or empty).
        kinds: which models: "float32", "float16", "int8".
        representative: int8's calibration images (see inputs.representative_images).
        eval_data: tf.Examples with boxes to measure COCO mAP on (an ExampleGen folder's eval split,
            TFRecord files or patterns); None: nothing is evaluated and the int8 gate does not run.
        options: calibration size, the gate's threshold, NMS flavour, interpreter threads.
        name: the model's name in the metadata.
        log: progress lines.
        configs: the architectures the SavedModel may have (default: detx's presets; see source.py).
        detector: `saved_model` already loaded by `source.load_detector` (it is loaded otherwise).

    Raises:
        OutputExistsError: `output` holds files.
        DetectorSourceError: `saved_model` is not a detx detector.
        RepresentativeDataError: int8 without usable calibration images.
        ConversionError: the TFLite converter failed.
        ValueError: an unknown kind, or eval data without examples.
    """
    options = options or TFLiteOptions()
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ValueError(f"unknown TFLite model kind(s) {unknown}; choose from {', '.join(KINDS)}")
    _check_output(output)
    if INT8 in kinds and representative is None:
        raise inputs.RepresentativeDataError("an int8 model needs representative images to calibrate on")
    if detector is None or detector.path != saved_model:
        detector = load_detector(saved_model, configs)
    size, num_classes = detector.config.image_size, detector.label_map.num_classes
    sample = None
    if INT8 in kinds and representative is not None:
        sample = inputs.representative_images(representative, size, options.calibration_examples, options.seed)
        log(f"calibrating int8 on {len(sample)} representative image(s)")
    examples = None
    if eval_data is not None:
        examples = inputs.serialized_examples(eval_patterns(eval_data))
        if not examples:
            raise ValueError(f"no tf.Examples in the eval data {eval_data}: give an ExampleGen folder or TFRecords")
    saved_map = saved_model_metrics(detector.saved_model or saved_model, examples, num_classes) if examples else None
    settings = PostProcessSettings.from_config(detector.config, num_classes, options.use_regular_nms)
    weights = variables_bytes(saved_model)
    staging = _staging(output)
    eval_threads = options.num_threads
    try:
        entries = []
        for kind in kinds:
            log(f"converting to {kind}")
            info = ModelInfo(
                name=f"{name} {kind}",
                description=f"detx SSD MobileNetV2-FPNLite ({detector.preset}) detecting "
                + ", ".join(detector.label_map.names),
                version=saved_model,
            )
            model = with_metadata(convert(detector, kind, settings, sample), info, detector.label_map)
            eval_threads = run_threads(model, options.num_threads)
            metrics = tflite_metrics(model, examples, num_classes, options.num_threads) if examples else None
            map_50 = metrics.map_50 if metrics else None
            saved_50 = saved_map.map_50 if saved_map else None
            decision = decide(kind, saved_50, map_50, options.max_int8_map50_drop)
            rel = MODEL_FILE.format(kind=kind)
            if not decision.ship:
                rel = os.path.join(REJECTED_DIR, rel)
            path = os.path.join(staging, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(model)
            entries.append(
                ModelEntry(
                    kind=kind,
                    file=rel,
                    size_bytes=len(model),
                    size_ratio=round(len(model) / weights, 4),
                    map_50=map_50,
                    map=metrics.map if metrics else None,
                    map_50_drop=None if map_50 is None or saved_50 is None else round(saved_50 - map_50, 6),
                    shipped=decision.ship,
                    reason=decision.reason,
                )
            )
            log(f"{kind}: {decision.reason}")
        report = TFLiteReport(
            saved_model={
                "path": saved_model,
                "preset": detector.preset,
                "variables_bytes": weights,
                "map_50": saved_map.map_50 if saved_map else None,
                "map": saved_map.map if saved_map else None,
            },
            eval_examples=len(examples or []),
            calibration_examples=0 if sample is None else len(sample),
            settings={
                "use_regular_nms": options.use_regular_nms,
                "max_int8_map50_drop": options.max_int8_map50_drop,
                "num_threads": options.num_threads,
                # interpreter.py runs per-class NMS with one thread (TFLite's kernel skips a class with more).
                "eval_threads": eval_threads,
                "seed": options.seed,
            },
            models=entries,
        )
        report.write(staging)
        _publish(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
