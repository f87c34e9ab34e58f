"""The Dagster layer, the pipeline catalog and the `consentgen` command line.

`pipelines` is the only package that may import the others (`consent`, `generators`,
`validation`); it stays thin wiring over their plain functions.
"""
