"""TSTR of real-as-synthetic matches TRTR; scrambled labels fall to chance."""

from __future__ import annotations

import numpy as np
import pytest

from consentgen.errors import AuditError
from validation.audit import tstr_figures


@pytest.fixture(scope="module")
def splits(distinct):
    images, tumour, _ = distinct
    order = np.random.default_rng(0).permutation(len(images))
    parts = (order[:170], order[170:340], order[340:])
    return [(images[p], tumour[p].astype(int)) for p in parts]


def test_tstr_of_good_synthetic_data_is_close_to_trtr(splits) -> None:
    (train, y_train), (test, y_test), (synthetic, y_syn) = splits
    figures = tstr_figures(synthetic, y_syn, train, y_train, test, y_test, seed=0)
    assert figures.trtr_accuracy >= figures.chance_accuracy + 0.1
    assert figures.tstr_accuracy >= figures.trtr_accuracy - 0.1
    assert figures.n_classes == 2 and figures.n_test_real == len(test)


def test_tstr_of_label_scrambled_synthetic_data_is_near_chance(splits) -> None:
    (train, y_train), (test, y_test), (synthetic, y_syn) = splits
    scrambled = np.random.default_rng(1).permutation(y_syn)
    figures = tstr_figures(synthetic, scrambled, train, y_train, test, y_test, seed=0)
    assert figures.tstr_accuracy <= figures.chance_accuracy + 0.08
    assert figures.tstr_accuracy < figures.trtr_accuracy - 0.05


def test_tstr_input_checks(splits) -> None:
    (train, y_train), (test, y_test), _ = splits
    with pytest.raises(AuditError, match="labels for"):
        tstr_figures(train, y_train[:-1], train, y_train, test, y_test)
    with pytest.raises(AuditError, match="two classes"):
        tstr_figures(train, np.zeros(len(train)), train, np.zeros(len(train)), test,
                     np.zeros(len(test)))


def test_tstr_is_reproducible_with_its_seed(splits) -> None:
    (train, y_train), (test, y_test), (synthetic, y_syn) = splits
    args = (synthetic[:60], y_syn[:60], train[:60], y_train[:60], test[:60], y_test[:60])
    first = tstr_figures(*args, seed=3, epochs=2)
    assert tstr_figures(*args, seed=3, epochs=2) == first  # the data card's figure repeats
