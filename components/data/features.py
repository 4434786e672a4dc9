"""tf.Example feature keys: the TF Object Detection API layout plus detx's statistics features.

The first block is the layout the Object Detection API's dataset tools write
(`create_coco_tf_record.py`, `create_pascal_tf_record.py`), so records made by
detx can be read by OD API tooling and the other way round.

The `detx/stats/*` block holds values derived at ingestion so that TFDV's
StatisticsGen can describe a detection dataset without looking at the image
bytes: objects per image, box geometry per object, and image brightness.
"""

from __future__ import annotations

from typing import Final

ENCODED: Final = "image/encoded"
FORMAT: Final = "image/format"
HEIGHT: Final = "image/height"
WIDTH: Final = "image/width"
FILENAME: Final = "image/filename"
SOURCE_ID: Final = "image/source_id"
XMIN: Final = "image/object/bbox/xmin"
XMAX: Final = "image/object/bbox/xmax"
YMIN: Final = "image/object/bbox/ymin"
YMAX: Final = "image/object/bbox/ymax"
LABEL: Final = "image/object/class/label"
TEXT: Final = "image/object/class/text"
IS_CROWD: Final = "image/object/is_crowd"

NUM_OBJECTS: Final = "detx/stats/num_objects"
BOX_WIDTH: Final = "detx/stats/box_width"
BOX_HEIGHT: Final = "detx/stats/box_height"
BOX_AREA: Final = "detx/stats/box_area"
BOX_ASPECT: Final = "detx/stats/box_aspect"
BRIGHTNESS: Final = "detx/stats/brightness"

# The feature that decides the train/eval split: hashing the image id keeps an
# image in the same split however often the dataset is re-ingested.
SPLIT_KEY: Final = SOURCE_ID

# Image formats written into `image/format`; the trainer decodes exactly these.
IMAGE_FORMATS: Final = ("jpeg", "png")
