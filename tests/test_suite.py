"""Named instances, suites, and spec strings."""

import numpy as np
import pytest

from harness.cli import main
from holo_bench import Ehrlich, RoughMtFuji, make_function
from holo_bench.suite import (
    families,
    family_members,
    family_spec,
    instances,
    parse_spec,
    resolve_problems,
    suites,
)


def test_spec_string_builds_the_instance():
    f = make_function("ehrlich:v=32,L=128,c=4,k=4,q=4,seed=7")
    assert isinstance(f, Ehrlich)
    assert (f.num_states, f.dim, f.num_motifs, f.motif_length, f.quantization, f.random_seed) == (
        32, 128, 4, 4, 4, 7,
    )


@pytest.mark.parametrize("name", sorted(instances()))
def test_every_named_instance_rebuilds_from_its_own_spec(name):
    f = make_function(name)
    g = make_function(f.spec)
    X = f.initial_solution(5)
    np.testing.assert_array_equal(f(X), g(X))
    assert f.spec == instances()[name]["spec"]


def test_named_instances_have_the_published_parameters():
    f2 = make_function("f2")
    assert ((f2.num_states, f2.dim, f2.num_motifs, f2.motif_length, f2.quantization)
            == (32, 32, 4, 4, 4))
    assert f2.random_seed == 50494
    v8 = make_function("ehr_v-08_l-128_m-8_c-8_q-8")
    assert (v8.num_states, v8.dim, v8.num_motifs, v8.motif_length) == (8, 128, 8, 8)
    fig5 = make_function("holo_fig5")
    assert (fig5.num_states, fig5.dim, fig5.num_motifs, fig5.motif_length, fig5.quantization) == (
        32, 256, 4, 8, 4,
    )
    assert fig5.random_seed == 0


def test_suites_name_known_instances_and_families():
    known = set(instances()) | set(families())
    for members in suites().values():
        assert all(name in known for name in members)
    assert len(suites()["bbo"]) == 6
    assert (resolve_problems(["smoke", "f2", "rmf:L=4,seed=1"])
            == suites()["smoke"] + ["f2", "rmf:L=4,seed=1"])


def test_a_family_runs_on_each_of_its_instance_seeds():
    assert resolve_problems(["f2_family"]) == [f"ehrlich:v=32,L=32,c=4,k=4,q=4,seed={seed}"
                                               for seed in (50494, 1, 2)]
    assert resolve_problems(["families"]) == (resolve_problems(["f2_family"])
                                              + resolve_problems(["ehr_l128_family"]))
    # f2_family's instances are the named f2, f2_seed1 and f2_seed2, bit for bit
    for name, member in zip(("f2", "f2_seed1", "f2_seed2"), family_members("f2_family")):
        assert make_function(member).spec == make_function(name).spec


@pytest.mark.parametrize("name", sorted(families()))
def test_every_family_is_a_seedless_spec_over_distinct_seeds(name):
    family = families()[name]
    assert name not in instances() and name not in suites()
    assert "seed" not in family["spec"] and len(set(family["seeds"])) == len(family["seeds"]) > 1
    assert {family_spec(member) for member in family_members(name)} == {
        family_spec(f"{family['spec']},seed=0")}


def test_family_spec_drops_only_the_seed():
    assert family_spec("f2") == "ehrlich:v=32,L=32,c=4,k=4,q=4"
    assert family_spec("f2_seed1") == family_spec("ehr_v-32_l-032_m-4_c-4_q-4")
    assert family_spec("ehr_v-32_l-032_m-4_c-4_q-2") != family_spec("f2")
    assert family_spec("ehrlich:v=8,L=16,c=2,k=4,q=4,eps=0.5,seed=3") == (
        "ehrlich:v=8,L=16,c=2,k=4,q=4,eps=0.5")
    assert family_spec("rmf:L=12,seed=3") == family_spec("rmf:L=12,seed=4")


def test_epistasis_and_rmf_specs():
    f = make_function("ehrlich:v=8,L=16,c=2,k=4,q=2,eps=0.5,seed=1")
    assert f.epistasis_factor == 0.5 and "eps=0.5" in f.spec
    assert isinstance(make_function("rmf:L=12,a=0.5,seed=3"), RoughMtFuji)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nope:v=3", "unknown function 'nope'"),
        ("ehrlich:v=32,L=32,x=1", "bad parameter 'x=1'"),
        ("ehrlich:v=32,L=abc", "not a number"),
        ("ehrlich:v=32,L=32", "incomplete spec"),
        ("ehrlich:v=32,L=8,c=4,k=4,q=4,seed=0", "cannot guarantee"),
    ],
)
def test_bad_specs_are_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        make_function(spec)


def test_none_reads_the_same_in_any_case_as_in_set():
    """`q=none` in a spec means what `--set mutation_prob=none` means: no value."""
    for text in ("none", "None", "null"):
        f = make_function(f"ehrlich:v=8,L=16,c=2,k=4,q={text},seed=1")
        assert (f.quantization == f.motif_length
                and f.spec == make_function("ehrlich:v=8,L=16,c=2,k=4,seed=1").spec)


def test_parse_spec_returns_constructor_arguments():
    cls, kwargs = parse_spec("ehrlich:v=32,L=32,c=4,k=4,q=4,seed=50494")
    assert cls is Ehrlich and kwargs["random_seed"] == 50494 and kwargs["num_states"] == 32


def test_cli_lists_suites_and_instances(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ehr_v-32_l-128_m-8_c-8_q-8" in out and "ehrlich:v=32,L=32,c=4,k=4,q=4,seed=50494" in out
    assert "smoke:" in out
