"""The judge: grades one submission by running the suites (pytest) against its sandbox."""
