"""DetectionExampleGen: COCO, Pascal VOC or OD API TFRecords in, validated OD API tf.Examples out."""
