"""LaMBO-2 (Gruver et al. 2023, "Protein Design with Guided Discrete Diffusion"): guided discrete
diffusion with a multi-task network, after cortex and poli-baselines (docs/lambo2.md).

Modules read like a round: ``model`` (the network), ``train`` (a round's training),
``acquisition`` (seeds and the acquisition function), ``guidance`` (the guided diffusion) and
``optimizer`` (the ask/tell optimizer that ties the rounds together).
"""
