"""The splitting schemes, one per module; each returns a `SplitPlan`."""
