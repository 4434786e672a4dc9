"""A small web page over the model server: upload an image, see its detections."""
