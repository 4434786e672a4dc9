"""The model card of a pushed version: facts from the pipeline's artifacts, rendered as Markdown and HTML."""
