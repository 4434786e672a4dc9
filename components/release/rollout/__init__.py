"""Progressive delivery: `detx rollout` takes a pushed candidate through shadow, canary and full traffic."""
