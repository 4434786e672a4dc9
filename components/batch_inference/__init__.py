"""Batch inference (`detx infer`): score many images with a detx SavedModel in a Beam job."""
