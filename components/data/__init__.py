"""Detection data: synthetic datasets, source readers, and conversion to OD API tf.Examples."""
