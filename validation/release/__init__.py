"""Gates on what ships: no identifying metadata, Great Expectations suites."""
