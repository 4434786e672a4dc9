"""Pre-labels and the review queue: batch-inference results turned into work for people, and back in as a span."""
