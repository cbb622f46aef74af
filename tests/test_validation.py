"""Bad input gets an error naming the problem, from functions and the oracle alike."""

import numpy as np
import pytest
import torch

from holo_bench import Ehrlich, Oracle


@pytest.fixture(scope="module")
def f():
    return Ehrlich(32, 16, 2, 4, 4, random_seed=0)


@pytest.mark.parametrize(
    "X,error,message",
    [
        (np.zeros((2, 15), dtype=int), ValueError, "length 16, got length 15"),
        (np.zeros(17, dtype=int), ValueError, "length 16, got length 17"),
        (np.full((1, 16), 32), ValueError,
         r"token 32 at sequence 0, position 0 is out of range \[0, 32\)"),
        (np.r_[np.zeros(5, int), -1, np.zeros(10, int)], ValueError,
         "token -1 at sequence 0, position 5"),
        (np.full((1, 16), 1.5), ValueError, "1.5.*not an integer"),
        (np.r_[np.zeros(15), np.nan], ValueError, "position 15 is nan, not an integer"),
        (np.r_[np.zeros(15), np.inf], ValueError, "is inf, not an integer"),
        (np.array([list("ACDEFGHIKLMNPQRS")]), TypeError, "integer tokens, got dtype <U1"),
        ([[0] * 16, [0] * 15], ValueError, "rectangular"),
        (np.zeros((2, 2, 16), dtype=int), ValueError,
         r"shape \(n, 16\) or \(16,\), got .* \(2, 2, 16\)"),
        (np.int64(3), ValueError, "got an array of shape ()"),
        (np.zeros((1, 16), dtype=bool), TypeError, "got dtype bool"),
        (np.zeros((1, 16), dtype=complex), TypeError, "got dtype complex128"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error_and_charges_nothing(f, X, error, message):
    with pytest.raises(error, match=message):
        f(X)
    oracle = Oracle(f, budget=10)
    with pytest.raises(error, match=message):
        oracle.evaluate(X)
    assert oracle.used == 0 and oracle.calls == 0 and len(oracle.records) == 0


def test_accepted_input_forms_give_the_same_values(f):
    x = f.initial_solution()
    value = f(x[None])[0]
    assert f(x) == value and np.ndim(f(x)) == 0
    assert f(x.tolist()) == value
    assert f(x.astype(np.float32)) == value  # integer-valued floats, as GA particles often are
    assert f(x.astype(np.uint8)) == value
    assert f(torch.from_numpy(x)) == value
    assert f([]).shape == (0,) and f(np.zeros((0, 16), dtype=int)).shape == (0,)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_states=32, dim=15, num_motifs=4, motif_length=4),
         "need 16 positions but dim is 15"),
        (dict(num_states=32, dim=32, num_motifs=4, motif_length=4, quantization=3), "must divide"),
        (dict(num_states=32, dim=32, num_motifs=4, motif_length=4, quantization=8), "must divide"),
        (dict(num_states=32, dim=32, num_motifs=4, motif_length=4, quantization=0), "quantization"),
        (dict(num_states=32, dim=32, num_motifs=0, motif_length=4), "num_motifs"),
        (dict(num_states=32, dim=32, num_motifs=4, motif_length=1), "motif_length"),
        (dict(num_states=1, dim=32, num_motifs=4, motif_length=4), "num_states"),
        (dict(num_states=32, dim=32, num_motifs=4, motif_length=4, noise_std=-1), "noise_std"),
    ],
)
def test_impossible_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Ehrlich(**kwargs)


@pytest.mark.parametrize("budget", [0, -5, 2.5, True, "10"])
def test_budget_must_be_a_positive_integer(f, budget):
    with pytest.raises((ValueError, TypeError)):
        Oracle(f, budget)


def test_oracle_refuses_noisy_or_negated_functions():
    with pytest.raises(ValueError, match="noise-free"):
        Oracle(Ehrlich(32, 16, 2, 4, noise_std=0.1), 10)
    with pytest.raises(ValueError, match="maximized"):
        Oracle(Ehrlich(32, 16, 2, 4, negate=True), 10)
