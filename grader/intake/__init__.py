"""Intake: a submission (folder, files, notebook, archive) made into the modules the suites import."""
