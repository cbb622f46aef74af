"""LLOME: a language model trained every round on the oracle's labels proposes edited sequences.

Modules read like the algorithm: ``data`` (edit pairs and preference triples), ``model`` (the LM
and its token layout), ``losses`` (SFT, DPO, MargE), ``train`` (one round of training),
``generate`` (sampling backends), ``propose`` (iterative refinement and selection), and
``optimizer`` (the ask/tell optimizer that ties the rounds together).
"""
