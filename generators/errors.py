"""The generators' own error: bad input data, beside the project-wide generator errors.

`GeneratorError` and `CheckpointError` live in `consentgen.errors` (the one root); this
module adds only what is specific to the arrays this package is handed.
"""

from __future__ import annotations

from consentgen.errors import GeneratorError


class GeneratorInputError(GeneratorError):
    """Images, labels or record ids that cannot be trained on or sampled as given."""
