"""`python -m detx.pipeline.cli`: the same as the `detx` command."""

from detx.pipeline.cli import main

main()
