"""Authoring: the student release, the lab notebook, the instructor bundle, the catalog of checks."""
