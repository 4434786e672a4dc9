"""EXIF orientation inside the exported graph: phone photos decoded upright, for every TF Serving client.

TensorFlow's image decoders ignore the EXIF orientation tag, so a phone photo
stored sideways (tag 6, the usual portrait shot) reaches the network sideways
and its boxes come back in the wrong frame. Clients cannot be trusted to turn
photos first (REST, Go or Java clients of TF Serving run none of detx's code),
so the `encoded_image` and `tf_example` signatures read the tag themselves
with TensorFlow ops and turn the decoded pixels as a viewer would: every
client gets the answer for the photo as people see it.

What is read: a JPEG's APP1 "Exif" segment within the first 64 KiB (where
cameras put it), its TIFF byte order, IFD0 and the Orientation entry (tag
0x0112, a SHORT), as the EXIF 2.3 standard lays them out. PNG's eXIf chunk and
anything unreadable count as orientation 1 (upright).
"""

from __future__ import annotations

import tensorflow as tf

_HEAD = 65536  # bytes searched for the EXIF segment
_MAX_ENTRIES = 64  # IFD0 entries looked at (cameras write about 10-20)
_EXIF = tf.constant([0x45, 0x78, 0x69, 0x66, 0, 0], tf.int32)  # "Exif\0\0"


def exif_orientation(data: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (1-8) of one encoded image (a scalar string); 1 when absent or unreadable."""
    head = tf.strings.substr(data, 0, _HEAD)
    raw = tf.cast(tf.io.decode_raw(head + tf.constant(b"\0" * 16), tf.uint8), tf.int32)  # padded: safe reads
    n = tf.shape(raw)[0] - 16
    is_jpeg = tf.logical_and(tf.equal(raw[0], 0xFF), tf.equal(raw[1], 0xD8))
    width = tf.maximum(n - 5, 1)
    found = tf.reduce_all(
        tf.stack([tf.equal(raw[i : i + width], _EXIF[i]) for i in range(6)]), axis=0
    )  # [width]: the pattern starts here
    has_exif = tf.logical_and(is_jpeg, tf.reduce_any(found))
    tiff = tf.argmax(tf.cast(found, tf.int32), output_type=tf.int32) + 6
    little = tf.equal(raw[tf.minimum(tiff, n)], 0x49)  # "II": Intel byte order; "MM": Motorola

    def at(index: tf.Tensor) -> tf.Tensor:
        return tf.gather(raw, tf.clip_by_value(index, 0, n + 15))

    def u16(pos: tf.Tensor) -> tf.Tensor:
        a, b = at(pos), at(pos + 1)
        return tf.where(little, a + 256 * b, 256 * a + b)

    def u32(pos: tf.Tensor) -> tf.Tensor:
        low, high = u16(pos), u16(pos + 2)
        return tf.where(little, low + 65536 * high, 65536 * low + high)

    ifd = tiff + u32(tiff + 4)
    count = tf.minimum(u16(ifd), _MAX_ENTRIES)
    entries = ifd + 2 + 12 * tf.range(_MAX_ENTRIES)
    is_orientation = tf.logical_and(tf.equal(u16(entries), 0x0112), tf.range(_MAX_ENTRIES) < count)
    value = u16(entries + 8)  # a SHORT sits in the first two bytes of the value field
    orientation = tf.reduce_max(tf.where(is_orientation, value, 0))
    valid = tf.logical_and(has_exif, tf.logical_and(orientation >= 1, orientation <= 8))
    return tf.where(valid, orientation, 1)


def upright(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """A decoded [height, width, channels] image turned as a viewer shows it (Pillow's exif_transpose)."""

    def transpose() -> tf.Tensor:
        return tf.transpose(image, [1, 0, 2])

    branches = [
        lambda: image,  # 1: upright
        lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
        lambda: tf.reverse(image, [0, 1]),  # 3: turned 180
        lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
        transpose,  # 5: mirrored along the main diagonal
        lambda: tf.reverse(transpose(), [1]),  # 6: stored turned 90 counter-clockwise
        lambda: tf.reverse(transpose(), [0, 1]),  # 7: mirrored along the other diagonal
        lambda: tf.reverse(transpose(), [0]),  # 8: stored turned 90 clockwise
    ]
    return tf.switch_case(tf.clip_by_value(orientation, 1, 8) - 1, branches)
