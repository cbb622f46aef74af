"""LLOME's training data: the neighbour graph, edit pairs, preference triples and the likelihood
filter (reference section 4.2, in our higher-is-better convention with -inf infeasible).

Expected values are worked by hand on pools of a few sequences, or come from plain Python loops
over every pair of rows.
"""

import numpy as np
import pytest

from optimizers.llome.data import (
    edit_pairs,
    neighbour_pairs,
    preference_triples,
    top_fraction_by_likelihood,
)

# A square: 0-1, 0-2, 1-3 and 2-3 differ in one position of four, the diagonals in two.
SQUARE = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 1, 1]])


def pairs_of(i, j):
    return sorted(zip(i.tolist(), j.tolist()))


def brute_force_pairs(X, k, max_distance):
    """Each row's k nearest other rows by (distance, index), joined both ways, within range."""
    n, L = X.shape
    distance = [[sum(a != b for a, b in zip(X[i], X[j])) / L for j in range(n)] for i in range(n)]
    lists = [sorted((distance[i][j], j) for j in range(n) if j != i)[:k] for i in range(n)]
    return sorted(
        {
            (min(i, j), max(i, j))
            for i in range(n)
            for _, j in lists[i]
            if distance[i][j] <= max_distance
        }
    )


def clustered_pool(seed, n, L, v, centres=3, rate=0.15):
    """Unique rows mutated from a few random centres: many close pairs, many distance ties."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, v, (centres, L))[rng.integers(0, centres, n)]
    mutated = rng.random(X.shape) < rate
    X[mutated] = rng.integers(0, v, mutated.sum())
    X = np.unique(X, axis=0)
    return X[rng.permutation(len(X))]


def quantized_values(seed, n, infeasible=0.2):
    """Values on a coarse grid, as Ehrlich's are (many ties), some of them infeasible."""
    rng = np.random.default_rng(seed + 1000)
    values = rng.integers(0, 5, n) / 4
    values[rng.random(n) < infeasible] = -np.inf
    return values


# --- neighbour_pairs ----------------------------------------------------------------------------


def test_neighbour_pairs_keep_an_edge_that_either_end_chose():
    # k=1, ties to the lower index: 0 picks 1 (of 1, 2), 1 picks 0 (of 0, 3), 2 picks 0 (of 0, 3),
    # 3 picks 1 (of 1, 2). Edge 2-3 is in range but neither end chose it.
    i, j = neighbour_pairs(SQUARE, k=1, max_distance=0.25)
    assert pairs_of(i, j) == [(0, 1), (0, 2), (1, 3)]


def test_neighbour_pairs_keep_every_in_range_edge_when_k_is_large_enough():
    # the diagonals 0-3 and 1-2 are 2/4 = 0.5 apart: out of range
    i, j = neighbour_pairs(SQUARE, k=2, max_distance=0.25)
    assert pairs_of(i, j) == [(0, 1), (0, 2), (1, 3), (2, 3)]


def test_neighbour_pairs_rank_nearer_rows_before_lower_indices():
    # 0 = 0000 and 1 = 0011 are 2/4 apart, in range at 0.5; 2 = 0001 is 1/4 from both. With
    # k=1, 0 and 1 each pick 2, and 2 picks 0 (tie with 1): 0-1 is never chosen.
    X = np.array([[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]])
    i, j = neighbour_pairs(X, k=1, max_distance=0.5)
    assert pairs_of(i, j) == [(0, 2), (1, 2)]


def test_neighbour_pairs_threshold_is_inclusive():
    # distances: 0-1 1/4, 1-2 1/4, 0-2 2/4, row 3 differs from all in 4/4
    X = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], [3, 3, 3, 3]])
    assert pairs_of(*neighbour_pairs(X, max_distance=0.25)) == [(0, 1), (1, 2)]
    assert pairs_of(*neighbour_pairs(X, max_distance=0.2499)) == []
    assert pairs_of(*neighbour_pairs(X, max_distance=0.5)) == [(0, 1), (0, 2), (1, 2)]


def test_neighbour_pairs_return_sorted_int64_pairs_with_i_below_j():
    X = clustered_pool(0, 80, 12, 4)
    i, j = neighbour_pairs(X, k=5, max_distance=0.4)
    assert i.dtype == j.dtype == np.int64
    assert (i < j).all()
    assert pairs_of(i, j) == list(zip(i.tolist(), j.tolist()))


@pytest.mark.parametrize(
    "seed, n, L, v, k, max_distance",
    [
        (0, 60, 8, 3, 3, 0.375),
        (1, 90, 12, 4, 5, 0.25),
        (2, 70, 16, 2, 29, 0.25),
        (3, 50, 10, 5, 1, 0.5),
        (4, 40, 6, 3, 100, 1.0),
        (5, 120, 32, 20, 7, 0.25),
    ],
)
def test_neighbour_pairs_match_brute_force(seed, n, L, v, k, max_distance):
    X = clustered_pool(seed, n, L, v)
    expected = brute_force_pairs(X, k, max_distance)
    assert len(expected) > 0
    # small blocks split the rows into many blocks, each mixing crowded and spacious rows
    for block_cells in (10**6, len(X) * 7, 1):
        assert pairs_of(*neighbour_pairs(X, k, max_distance, block_cells=block_cells)) == expected


def test_neighbour_pairs_match_brute_force_on_sequences_longer_than_a_byte_count():
    X = clustered_pool(6, 30, 300, 4, centres=2, rate=0.1)
    assert pairs_of(*neighbour_pairs(X, 4, 0.25)) == brute_force_pairs(X, 4, 0.25)


def test_neighbour_pairs_of_tiny_pools_are_empty():
    for X in (np.zeros((0, 5), int), np.zeros((1, 5), int)):
        i, j = neighbour_pairs(X)
        assert len(i) == len(j) == 0
    assert len(neighbour_pairs(SQUARE, k=0)[0]) == 0


def test_neighbour_pairs_of_ten_thousand_random_rows_are_none():
    """A pool the size of the seed data, in many blocks (benchmarks/test_llome_data_speed.py
    times it)."""
    X = np.random.default_rng(0).integers(0, 32, (10_000, 32))
    i, j = neighbour_pairs(X)
    # random rows agree in ~1 of 32 positions, so none is within 8 mismatches of another
    assert len(i) == len(j) == 0


# --- edit_pairs ---------------------------------------------------------------------------------

# Five distinct rows, all within range of each other with max_distance=1 and k=29.
FIVE = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 2]])
FIVE_VALUES = np.array([0.5, 0.75, 0.5, -np.inf, -np.inf])


def five_pairs(rng, max_infeasible_fraction):
    return edit_pairs(
        FIVE, FIVE_VALUES, rng, max_distance=1.0, max_infeasible_fraction=max_infeasible_fraction
    )


def triples_of(pairs):
    return sorted(zip(pairs.prompt.tolist(), pairs.target.tolist(), pairs.reward.tolist()))


def test_edit_pairs_orient_worse_to_better_and_drop_ties():
    pairs = five_pairs(np.random.default_rng(0), 1.0)
    # 0-2 (0.5 = 0.5) and 3-4 (both infeasible) are ties; an infeasible prompt counts as 0, so
    # its reward is the target's value.
    assert triples_of(pairs) == [
        (0, 1, 0.25),
        (2, 1, 0.25),
        (3, 0, 0.5),
        (3, 1, 0.75),
        (3, 2, 0.5),
        (4, 0, 0.5),
        (4, 1, 0.75),
        (4, 2, 0.5),
    ]
    assert pairs.reward.dtype == np.float64


@pytest.mark.parametrize(
    "fraction, kept_infeasible",
    # 2 pairs with a feasible prompt: cap = round(2 f / (1 - f)) of the 6 others
    [(0.1, 0), (0.3, 1), (0.5, 2), (0.6, 3), (0.75, 6), (1.0, 6)],
)
def test_edit_pairs_cap_infeasible_prompts_on_a_small_pool(fraction, kept_infeasible):
    pairs = five_pairs(np.random.default_rng(1), fraction)
    infeasible = FIVE_VALUES[pairs.prompt] == -np.inf
    assert (~infeasible).sum() == 2
    assert infeasible.sum() == kept_infeasible
    everything = set(triples_of(five_pairs(np.random.default_rng(1), 1.0)))
    assert set(triples_of(pairs)) <= everything
    assert len(set(triples_of(pairs))) == len(pairs)


def test_edit_pairs_cap_infeasible_prompts_at_a_tenth():
    # A base row and its 48 single mutants (16 positions x 3 other tokens): any two rows differ
    # in at most 2 of 16 positions, so with k >= 48 every one of the 49 * 48 / 2 = 1176 pairs
    # is a neighbour pair. 10 mutants are infeasible, the other 39 rows have distinct values:
    # 39 * 38 / 2 = 741 pairs with a feasible prompt, 10 * 39 = 390 with an infeasible one (and
    # 45 infeasible ties dropped). Cap: round(741 * 0.1 / 0.9) = round(82.33) = 82.
    base = np.zeros(16, int)
    mutants = [base.copy()]
    for p in range(16):
        for token in (1, 2, 3):
            mutant = base.copy()
            mutant[p] = token
            mutants.append(mutant)
    X = np.array(mutants)
    rng = np.random.default_rng(2)
    values = rng.permutation(49) / 48.0
    values[rng.choice(49, 10, replace=False)] = -np.inf
    pairs = edit_pairs(X, values, np.random.default_rng(3), k=60)
    infeasible = values[pairs.prompt] == -np.inf
    assert (~infeasible).sum() == 741
    assert infeasible.sum() == 82
    assert (values[pairs.target] > -np.inf).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_edit_pairs_match_brute_force(seed):
    X = clustered_pool(seed, 80, 10, 3)
    values = quantized_values(seed, len(X))
    worth = np.where(values == -np.inf, 0.0, values)
    expected = []
    for a, b in brute_force_pairs(X, 6, 0.3):
        if values[a] != values[b]:
            worse, better = (a, b) if values[a] < values[b] else (b, a)
            expected.append((worse, better, max(worth[better] - worth[worse], 0.0)))
    rng = np.random.default_rng(seed)
    pairs = edit_pairs(X, values, rng, k=6, max_distance=0.3, max_infeasible_fraction=1.0)
    assert triples_of(pairs) == sorted(expected)
    assert (values[pairs.target] > values[pairs.prompt]).all()


def test_edit_pairs_are_deterministic_under_the_generator_and_shuffled_by_it():
    X = clustered_pool(4, 80, 10, 3)
    values = quantized_values(4, len(X), infeasible=0.5)

    def run(seed):
        return edit_pairs(X, values, np.random.default_rng(seed), k=6, max_distance=0.3)

    a, b, c = run(7), run(7), run(8)
    for name in ("prompt", "target", "reward"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert len(a) == len(c)
    assert not np.array_equal(a.prompt, c.prompt)

    def feasible_prompt(pairs):
        return {t for t in triples_of(pairs) if values[t[0]] > -np.inf}

    assert feasible_prompt(a) == feasible_prompt(c)  # kept whatever the draw


def test_edit_pairs_validate_values():
    with pytest.raises(ValueError, match="values"):
        edit_pairs(FIVE, FIVE_VALUES[:4], np.random.default_rng(0))
    with pytest.raises(ValueError, match="NaN"):
        edit_pairs(FIVE, np.array([0.1, np.nan, 0.2, 0.3, 0.4]), np.random.default_rng(0))


# --- preference_triples -------------------------------------------------------------------------


def sorted_triples(triples):
    return sorted(
        zip(triples.prompt.tolist(), triples.chosen.tolist(), triples.rejected.tolist())
    )


def test_preference_triples_on_a_complete_graph():
    # h = [0.5, 0.7, 0.5, 0.2, infeasible]; every pair of rows is a neighbour pair.
    # anchor 0: chosen {1}, rejected {0 itself, 2 (equal), 3} ; anchor 1: nothing is better;
    # anchor 2: chosen {1}, rejected {0, 2 itself, 3} ; anchor 3: chosen {0, 1, 2}, rejected {3}.
    # Row 4 is infeasible: no part in any triple (the reference's NaN fails every comparison).
    values = np.array([0.5, 0.7, 0.5, 0.2, -np.inf])
    triples = preference_triples(FIVE, values, np.random.default_rng(0), max_distance=1.0)
    assert sorted_triples(triples) == [
        (0, 1, 0), (0, 1, 2), (0, 1, 3),
        (2, 1, 0), (2, 1, 2), (2, 1, 3),
        (3, 0, 3), (3, 1, 3), (3, 2, 3),
    ]  # fmt: skip


def test_preference_triples_follow_the_neighbour_graph():
    # k=1 square: edges 0-1, 0-2, 1-3 (2-3 was chosen by neither end). h = [0.4, 0.6, 0.2, 0.3].
    # anchor 0 (W = {1, 2}): chosen 1, rejected 0 or 2 ; anchor 1 (W = {0, 3}): none better ;
    # anchor 2 (W = {0}): chosen 0, rejected 2 ; anchor 3 (W = {1}): chosen 1, rejected 3.
    values = np.array([0.4, 0.6, 0.2, 0.3])
    triples = preference_triples(SQUARE, values, np.random.default_rng(0), k=1)
    assert sorted_triples(triples) == [(0, 1, 0), (0, 1, 2), (2, 0, 2), (3, 1, 3)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_preference_triples_match_brute_force(seed):
    X = clustered_pool(seed, 60, 10, 3)
    values = quantized_values(seed, len(X))
    n = len(X)
    neighbours = {x: set() for x in range(n)}
    for a, b in brute_force_pairs(X, 5, 0.3):
        neighbours[a].add(b)
        neighbours[b].add(a)
    expected = []
    for x in range(n):
        for w in neighbours[x]:
            for r in neighbours[x] | {x}:
                feasible = min(values[x], values[w], values[r]) > -np.inf
                if feasible and values[w] > values[x] >= values[r]:
                    expected.append((x, w, r))
    triples = preference_triples(X, values, np.random.default_rng(seed), k=5, max_distance=0.3)
    assert len(expected) > 0
    assert sorted_triples(triples) == sorted(expected)


def test_preference_triples_sample_at_most_max_triples_without_replacement():
    X = clustered_pool(3, 60, 10, 3)
    values = quantized_values(3, len(X))

    def run(seed, max_triples):
        rng = np.random.default_rng(seed)
        return preference_triples(X, values, rng, k=5, max_distance=0.3, max_triples=max_triples)

    everything = set(sorted_triples(run(0, None)))
    assert len(everything) > 50
    sample = run(1, 50)
    assert len(sample) == 50
    assert len(set(sorted_triples(sample))) == 50
    assert set(sorted_triples(sample)) <= everything
    np.testing.assert_array_equal(run(1, 50).chosen, sample.chosen)
    assert set(sorted_triples(run(1, 10**6))) == everything


def test_preference_triples_of_a_pool_without_improvements_are_empty():
    triples = preference_triples(SQUARE, np.full(4, 0.5), np.random.default_rng(0))
    assert len(triples) == 0 and triples.prompt.dtype == np.int64


# --- top_fraction_by_likelihood -----------------------------------------------------------------


def test_top_fraction_keeps_the_top_forty_percent_by_hand():
    # sorted: -5 -4 -3 -2 -1; the 0.6 quantile sits at rank 0.6 * 4 = 2.4, between -3 and -2
    mask = top_fraction_by_likelihood(np.array([-1.0, -2.0, -3.0, -4.0, -5.0]))
    np.testing.assert_array_equal(mask, [True, True, False, False, False])


def test_top_fraction_keeps_the_quantile_itself_and_its_ties():
    # rank 0.6 * 5 = 3 lands on -2 exactly (NaN ignored): -2, both ties included, and above
    loglik = np.array([-2.0, np.nan, -3.0, -1.0, -2.0, -5.0, -4.0])
    mask = top_fraction_by_likelihood(loglik)
    np.testing.assert_array_equal(mask, [True, False, False, True, True, False, False])


@pytest.mark.parametrize("seed", range(5))
def test_top_fraction_matches_the_reference_threshold_on_likelihoods(seed):
    rng = np.random.default_rng(seed)
    loglik = np.round(rng.normal(-1.0, 0.5, 200), 1)  # rounding makes ties
    loglik[rng.random(200) < 0.1] = np.nan
    valid = ~np.isnan(loglik)
    likelihood = np.exp(loglik)
    expected = valid & (likelihood >= np.quantile(likelihood[valid], 0.6))
    np.testing.assert_array_equal(top_fraction_by_likelihood(loglik, 0.4), expected)


def test_top_fraction_of_nothing_valid_keeps_nothing():
    assert not top_fraction_by_likelihood(np.array([np.nan, np.nan])).any()
    assert top_fraction_by_likelihood(np.array([])).shape == (0,)
