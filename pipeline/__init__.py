"""The detx pipeline: configuration, `create_pipeline`, runners and the `detx` command line."""
