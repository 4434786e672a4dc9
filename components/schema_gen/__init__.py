"""DetectionSchemaGen: the curated detection schema, specialised to the dataset's label map."""
