"""Detection evaluation: COCO metrics of an exported model, with pycocotools as the reference."""
