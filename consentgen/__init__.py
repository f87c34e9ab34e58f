"""Shared ground of the consentgen packages: the exception hierarchy and the data home.

It sits below `consent`, `generators`, `validation` and `pipelines` so they can share one
error root without importing each other (see DESIGN.md, "Packages and their boundaries").
"""

from consentgen.errors import ConsentgenError

__all__ = ["ConsentgenError"]
__version__ = "0.1.0"
