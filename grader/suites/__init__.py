"""The assignments' packages: one per lab, each declaring `ASSIGNMENT` (see grader.assignment, which also adds
the folders $GRADER_ASSIGNMENTS lists to this package's path)."""
