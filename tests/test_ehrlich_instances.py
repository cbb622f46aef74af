"""Published instance values (bbo-bench, seed 50494) and the structure every instance must have."""

import numpy as np
import pytest

from holo_bench import Ehrlich, make_function

# From the reference description of the bbo-bench instances (holo through poli, seed 50494).
BBO_MOTIFS = [[23, 21, 10, 27], [14, 9, 31, 9], [31, 29, 6, 21], [10, 10, 8, 11]]
POLI_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"


def test_f2_matches_published_motifs_spacings_and_optimum():
    f = make_function("f2")
    assert f.motifs.tolist() == BBO_MOTIFS
    assert f.spacings.tolist() == [[2, 1, 3], [1, 2, 2], [2, 2, 1], [2, 3, 1]]
    optimum = "".join(POLI_ALPHABET[t] for t in f.optimal_solution())
    assert optimum == "XXVKKK2OJJ66J6644GVKKKKKILLLLLLL"
    assert f(f.initial_solution()) == 0.046875


def test_long_variant_shares_motifs_with_published_spacings():
    f = make_function("ehr_v-32_l-128_m-4_c-4_q-4")
    assert f.motifs.tolist() == BBO_MOTIFS
    assert f.spacings.tolist() == [[8, 7, 15], [7, 8, 14], [14, 13, 2], [10, 15, 5]]


def test_eight_motif_variant_extends_the_same_chain():
    f = make_function("ehr_v-32_l-128_m-8_c-8_q-8")
    assert f.motifs[:2].ravel().tolist() == sum(BBO_MOTIFS, [])
    assert f.motifs[2].tolist() == [24, 3, 16, 15, 11, 14, 29, 1]
    assert f.motifs[7].tolist() == [5, 21, 27, 10, 3, 16, 19, 24]
    assert f.spacings.min() >= 1 and f.spacings.max() <= 4


def test_quantization_does_not_change_the_instance():
    a, b = make_function("ehr_v-32_l-128_m-4_c-4_q-4"), make_function("ehr_v-32_l-128_m-4_c-4_q-2")
    np.testing.assert_array_equal(a.motifs, b.motifs)
    np.testing.assert_array_equal(a.spacings, b.spacings)


@pytest.mark.parametrize("seed", range(5))
def test_structure_of_an_instance(seed):
    f = Ehrlich(32, 64, 4, 4, 4, random_seed=seed)
    P = f.transition_matrix
    assert P.dtype == np.float32 and np.allclose(P.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(np.diag(P) > 0)  # repeats always allowed
    assert np.all((P > 0).sum(axis=1) >= 25)  # 2 * floor(0.4 * 32) + 1 band, plus the diagonal
    # Each motif is itself a feasible chain, and motif i may be followed by motif i+1.
    chain = f.motifs.ravel()
    assert f.allowed[chain[:-1], chain[1:]].all()
    assert f.optimal_value == 1.0 and f(f.optimal_solution()) == 1.0
    assert f.is_feasible(f.initial_solution(20)).all()
    # Spans fit back to back.
    assert (f.offsets[:, -1] + 1).sum() <= f.dim


def test_log_likelihood_is_minus_inf_exactly_when_infeasible():
    f = Ehrlich(32, 32, 4, 4, 4, random_seed=3)
    X = np.concatenate([f.initial_solution(50), f.random_solution(50, rng=1)])
    loglik = f.log_likelihood(X)
    np.testing.assert_array_equal(loglik > -np.inf, f.is_feasible(X))
    row = X[0]
    expected = np.log(1 / 32) + sum(
        np.log(np.float64(f.transition_matrix[a, b])) for a, b in zip(row[:-1], row[1:])
    )
    assert np.isclose(loglik[0], expected)


def test_random_solution_is_seeded_by_its_generator_argument():
    f = Ehrlich(32, 32, 4, 4, 4)
    np.testing.assert_array_equal(f.random_solution(3, rng=7), f.random_solution(3, rng=7))
    assert f.random_solution().shape == (32,) and f.random_solution(4).shape == (4, 32)


def test_motif_presence_reports_each_quantized_motif():
    f = make_function("f2")
    presence = f.motif_presence(f.optimal_solution())
    np.testing.assert_array_equal(presence, np.ones((1, 4), dtype=np.float32))
    x = f.initial_solution()
    assert np.prod(f.motif_presence(x)) == f(x)
