"""One synthetic scene written as COCO, Pascal VOC, YOLO and OD API TFRecords ingests to the same examples.

Each copy goes through what DetectionExampleGen runs per record: `scan_source`
with `--format auto`, then `build_example` (TFRecords streamed through
`parse_streamed_record`, as the executor streams them).
"""

import pytest

from detx.components.data import features as F
from detx.components.data.ingest_options import DEFAULT_PATTERNS, FORMATS, IngestOptions
from detx.components.data.records import Converted, DataLimits, build_example
from detx.components.data.sources import parse_streamed_record, scan_source
from detx.components.data.synth import SynthConfig, write_dataset
from detx.components.data.tfrecord_source import iter_records

# YOLO stores normalized centres and sizes to 6 decimals: corners may differ by 1e-6.
YOLO_TOLERANCE = 2e-6


def _ingest(path):
    scan = scan_source(IngestOptions(), path, DEFAULT_PATTERNS["auto"])
    records = list(scan.records) + [
        parse_streamed_record(file, raw, scan.file_spans) for file in scan.tfrecord_files for raw in iter_records(file)
    ]
    examples = {}
    for record in records:
        result = build_example(record, scan.resolve, scan.label_map, DataLimits())
        assert isinstance(result, Converted), result
        f = result.example.features.feature
        examples[f[F.FILENAME].bytes_list.value[0].decode()] = {
            "image": f[F.ENCODED].bytes_list.value[0],
            "size": (f[F.WIDTH].int64_list.value[0], f[F.HEIGHT].int64_list.value[0]),
            "labels": list(f[F.LABEL].int64_list.value),
            "texts": list(f[F.TEXT].bytes_list.value),
            "boxes": [list(f[k].float_list.value) for k in (F.XMIN, F.YMIN, F.XMAX, F.YMAX)],
        }
    return scan, examples


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("scene")
    config = SynthConfig(num_images=12, seed=21, width=320, height=240, max_size=120)
    return {fmt: _ingest(write_dataset(str(root / fmt), config, fmt).out_dir) for fmt in FORMATS}


def test_every_format_is_detected_and_read_whole(ingested):
    for fmt, (scan, examples) in ingested.items():
        assert scan.notes[0].startswith("--format auto: read ") and f" as {fmt}: found " in scan.notes[0]
        assert not scan.rejects and len(examples) == 12
        assert scan.label_map.names == ("circle", "square", "triangle")


def test_the_four_formats_give_the_same_images_labels_and_boxes(ingested):
    _, coco = ingested["coco"]
    assert sum(len(e["labels"]) for e in coco.values()) > 12
    for fmt in ("voc", "tfrecord", "yolo"):
        _, other = ingested[fmt]
        assert sorted(other) == sorted(coco), fmt
        for filename, example in coco.items():
            theirs = other[filename]
            assert theirs["image"] == example["image"], (fmt, filename)
            assert (theirs["size"], theirs["labels"], theirs["texts"]) == (
                example["size"],
                example["labels"],
                example["texts"],
            ), (fmt, filename)
            tolerance = YOLO_TOLERANCE if fmt == "yolo" else 0.0
            for mine, yours in zip(example["boxes"], theirs["boxes"], strict=True):
                assert yours == pytest.approx(mine, abs=tolerance, rel=0), (fmt, filename)
