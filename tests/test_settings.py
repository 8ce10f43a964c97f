"""The checks the settings objects run when made: numpy scalars become plain numbers (the
model file's JSON meta takes them), wrong types, NaN and out-of-range values are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from potts_gwg import settings
from potts_gwg.fit.pcd import PcdSettings
from potts_gwg.fit.plm import PlmSettings
from potts_gwg.pipeline import FitOptions


def test_numpy_scalars_become_plain_numbers():
    value = settings.integer("n", np.int64(7), least=1)
    assert value == 7 and type(value) is int
    value = settings.real("x", np.float32(0.5), least=0, most=1)
    assert value == 0.5 and type(value) is float
    assert type(settings.random_seed(np.uint32(3))) is int


@pytest.mark.parametrize("check, message", [
    (lambda: settings.integer("n", 2.0), "n must be an integer, got 2.0 (float)"),
    (lambda: settings.integer("n", True), "n must be an integer, got True (bool)"),
    (lambda: settings.integer("n", "3"), "n must be an integer, got '3' (str)"),
    (lambda: settings.integer("n", 0, least=1), "n must be >= 1, got 0"),
    (lambda: settings.integer("n", 9, least=1, most=8), "n must be in 1..8, got 9"),
    (lambda: settings.real("x", math.nan), "x must be finite, got nan"),
    (lambda: settings.real("x", np.float32("inf"), least=0), "x must be finite, got inf"),
    (lambda: settings.real("x", -0.1, least=0), "x must be >= 0, got -0.1"),
    (lambda: settings.real("x", 0.0, above=0), "x must be > 0, got 0.0"),
    (lambda: settings.real("x", 1, least=0, below=1), "x must be < 1, got 1.0"),
    (lambda: settings.real("x", "0.1"), "x must be a number, got '0.1' (str)"),
    (lambda: settings.random_seed(-1), "seed must be in 0..9223372036854775807, got -1"),
    (lambda: settings.random_seed(2 ** 63), "seed must be in 0..9223372036854775807"),
])
def test_bad_values_are_refused_naming_the_setting(check, message):
    with pytest.raises((TypeError, ValueError)) as caught:
        check()
    assert str(caught.value).startswith(message)


def test_fit_settings_convert_and_refuse_at_construction():
    plm = PlmSettings(max_iterations=np.int64(50), lambda_j=np.float32(0.25))
    assert type(plm.max_iterations) is int and type(plm.lambda_j) is float
    pcd = PcdSettings(n_chains=np.int32(64), max_time=np.float64(10), steps=np.int16(3))
    assert (type(pcd.n_chains), type(pcd.max_time), type(pcd.steps)) == (int, float, int)
    options = FitOptions(seed=np.int64(5), theta=np.float32(0.75), query_index=np.int8(2))
    assert (options.seed, options.theta, options.query_index) == (5, 0.75, 2)
    assert type(options.seed) is int
    for make, message in [(lambda: PlmSettings(lambda_h=math.nan), "lambda_h must be finite"),
                          (lambda: PcdSettings(n_chains=10.5), "n_chains must be an integer"),
                          (lambda: PcdSettings(target_pearson=2), "target_pearson must be <= 1"),
                          (lambda: FitOptions(seed=1.5), "seed must be an integer"),
                          (lambda: FitOptions(theta=0), "theta must be > 0"),
                          (lambda: FitOptions(query_index=0), "query_index (1-based) must be")]:
        with pytest.raises((TypeError, ValueError), match=message.replace("(", r"\(")
                           .replace(")", r"\)")):
            make()
