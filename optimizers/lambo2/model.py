"""LaMBO-2's network: cortex's ``SequenceModelTree`` as bbo-bench configures it for Ehrlich
functions, in plain torch.

Tokens are ``0 .. v-1`` (the alphabet) and ``v``, the mask token. Shapes are channels first:
``B`` sequences, ``D`` trunk channels, ``L`` positions.

- Root (cortex's ``Conv1dRoot``): an embedding of ``v + 1`` tokens in ``embed_dim`` (32), each
  vector scaled to norm ``sqrt(embed_dim)``, plus sinusoidal positions, then two residual blocks
  ``embed_dim -> channels (128) -> embed_dim``. The trunk (``SumTrunk`` of one root) passes the
  root's per-position features ``(B, D, L)`` on unchanged: guidance acts on them.
- A residual block (``Conv1dResidBlock``): channel norm -> swish -> conv (no bias) -> channel norm
  -> swish -> conv (no bias), plus the input through a 1x1 convolution. "Channel norm" is a
  layer norm over the channels of each position (``MaskLayerNorm1d``).
- ``E`` value members and ``E`` feasibility members (``Conv1dBranch`` with one block
  ``D -> 8``, mean over positions): each member's block reads the trunk; all members run as one
  grouped convolution. Value head (``RegressorLeaf``): a linear map to the natural parameters
  of a Gaussian, its mean in label units. Feasibility head (``ClassifierLeaf``): layer norm
  (no bias) and a linear map to two logits.
- Masked-language-model head (``DenoisingLanguageModelLeaf`` on an identity branch): layer norm
  (no bias) and a linear map from each position's trunk features to ``v + 1`` logits.

Weights are drawn from a ``torch.Generator`` with torch's default initializations (uniform in
``1/sqrt(fan_in)`` for convolutions and linear maps, standard normal for the embedding), so
building a model draws nothing from torch's global generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Width of each member's branch output (bbo-bench's ``out_dim: 8`` for both branch kinds).
BRANCH_DIM = 8
# Layer-norm epsilon (torch's default, which cortex's layer norms keep).
NORM_EPS = 1e-5
# Floor of a value member's predicted variance (cortex's ``var_lb``).
VAR_FLOOR = 1e-4


def positions(dim: int, length: int) -> torch.Tensor:
    """Sinusoidal position codes ``(dim, length)`` for an even ``dim``: sines on even channels,
    cosines on odd ones."""
    where = torch.arange(length, dtype=torch.float64)
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    code = torch.zeros(dim, length, dtype=torch.float64)
    code[0::2] = torch.sin(rate[:, None] * where)
    code[1::2] = torch.cos(rate[:, None] * where)
    return code.float()


def gaussian(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the Gaussian a value member's outputs ``(..., 2)`` parametrize:
    natural parameters ``eta1 = outputs[..., 0]`` and ``eta2 = -softplus(outputs[..., 1],
    beta=0.5)``, so variance ``-1 / (2 eta2)`` and mean ``eta1 * variance``."""
    variance = 0.5 / F.softplus(outputs[..., 1], beta=0.5)
    return outputs[..., 0] * variance, variance


class Init:
    """torch's default initializations, drawn from one generator."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def uniform(self, fan_in: int, *shape: int) -> torch.nn.Parameter:
        bound = 1.0 / math.sqrt(fan_in)
        draw = torch.rand(*shape, generator=self.generator) * 2 - 1
        return torch.nn.Parameter(draw * bound)

    def normal(self, *shape: int) -> torch.nn.Parameter:
        return torch.nn.Parameter(torch.randn(*shape, generator=self.generator))

    @staticmethod
    def ones(*shape: int) -> torch.nn.Parameter:
        return torch.nn.Parameter(torch.ones(*shape))

    @staticmethod
    def zeros(*shape: int) -> torch.nn.Parameter:
        return torch.nn.Parameter(torch.zeros(*shape))


class ResidualBlocks(torch.nn.Module):
    """``M`` residual blocks ``c_in -> c_out`` (kernel ``k``) that read the same input: maps
    ``(B, c_in, L)`` to ``(B, M * c_out, L)``, member ``m`` in channels ``m*c_out ..``."""

    def __init__(self, c_in: int, c_out: int, k: int, members: int, init: Init):
        super().__init__()
        self.members, self.c_in, self.c_out, self.k = members, c_in, c_out, k
        M = members
        self.norm1_weight, self.norm1_bias = Init.ones(M, c_in), Init.zeros(M, c_in)
        self.conv1 = init.uniform(c_in * k, M * c_out, c_in, k)
        self.norm2_weight, self.norm2_bias = Init.ones(M, c_out), Init.zeros(M, c_out)
        self.conv2 = init.uniform(c_out * k, M * c_out, c_out, k)
        self.project = init.uniform(c_in, M * c_out, c_in, 1)
        self.project_bias = init.uniform(c_in, M * c_out)

    def forward(self, x: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """Every member's output, or member ``member``'s alone ``(B, c_out, L)``."""
        if member is None:
            M, which, rows = self.members, slice(None), slice(None)
        else:
            M, which = 1, slice(member, member + 1)
            rows = slice(member * self.c_out, (member + 1) * self.c_out)
        h = norm_swish(x, self.norm1_weight[which], self.norm1_bias[which])
        h = F.conv1d(h, self.conv1[rows], padding=self.k // 2, groups=M)
        h = norm_swish(h, self.norm2_weight[which], self.norm2_bias[which])
        h = F.conv1d(h, self.conv2[rows], padding=self.k // 2, groups=M)
        return h + F.conv1d(x, self.project[rows], self.project_bias[rows])


def norm_swish(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``swish(channel norm * weight + bias)`` for ``M`` members (``weight``, ``bias``
    ``(M, C)``): ``x`` is ``(B, C, L)``, read by every member, or ``(B, M * C, L)``, one group of
    channels per member; returns ``(B, M * C, L)``. Computed with channels last, where torch's
    layer norm is fused (and takes the affine map itself when ``M`` is 1)."""
    B, _, L = x.shape
    M, C = weight.shape
    h = x.transpose(1, 2).reshape(B, L, -1, C)
    if M == 1:
        h = F.layer_norm(h, (C,), weight[0], bias[0], eps=NORM_EPS)
    else:
        h = F.layer_norm(h, (C,), eps=NORM_EPS) * weight + bias
    return F.silu(h).reshape(B, L, M * C).transpose(1, 2).contiguous()


class Lambo2Model(torch.nn.Module):
    """The network for sequences of ``length`` tokens out of ``num_states`` (see the module's
    docstring). ``scale`` holds the value labels' mean and standard deviation: value members
    are trained on standardized labels and report label units."""

    def __init__(self, num_states: int, length: int, members: int, embed_dim: int,
                 channels: int, kernel_size: int, generator: torch.Generator):
        super().__init__()
        init = Init(generator)
        v, D, E, k = num_states, embed_dim, members, kernel_size
        self.num_states, self.members = v, E
        self.embedding = init.normal(v + 1, D)
        self.register_buffer("position", positions(D, length))
        self.root = torch.nn.Sequential(ResidualBlocks(D, channels, k, 1, init),
                                        ResidualBlocks(channels, D, k, 1, init))
        self.value_branch = ResidualBlocks(D, BRANCH_DIM, k, E, init)
        self.value_head, self.value_bias = init.uniform(BRANCH_DIM, E, BRANCH_DIM, 2), \
            init.uniform(BRANCH_DIM, E, 1, 2)
        self.feasible_branch = ResidualBlocks(D, BRANCH_DIM, k, E, init)
        self.feasible_norm = Init.ones(E, 1, BRANCH_DIM)
        self.feasible_head, self.feasible_bias = init.uniform(BRANCH_DIM, E, BRANCH_DIM, 2), \
            init.uniform(BRANCH_DIM, E, 1, 2)
        self.token_norm = Init.ones(D)
        self.token_head, self.token_bias = init.uniform(D, v + 1, D), init.uniform(D, v + 1)
        self.register_buffer("scale", torch.tensor([0.0, 1.0]))  # label mean, label std

    @property
    def mask_token(self) -> int:
        return self.num_states

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, D, L)`` of tokens ``(B, L)``, each of norm ``sqrt(D)``."""
        vectors = F.embedding(tokens, self.embedding)
        vectors = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return (vectors * math.sqrt(self.embedding.shape[1])).transpose(1, 2)

    def trunk(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Trunk features ``(B, D, L)`` from token embeddings ``(B, D, L)``."""
        return self.root(embeddings + self.position)

    def value_outputs(self, features: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """Each value member's raw outputs ``(E, B, 2)`` (``(1, B, 2)`` for one ``member``):
        the first natural parameter of a Gaussian over the standardized label, and a
        pre-activation of the second."""
        pooled, members = self._pooled(self.value_branch, features, member)
        return torch.baddbmm(self.value_bias[members], pooled, self.value_head[members])

    def values(self, features: torch.Tensor) -> torch.Tensor:
        """Each value member's predicted mean in label units ``(E, B)``."""
        outputs = self.value_outputs(features)
        _, variance = gaussian(outputs)
        mean = outputs[..., 0] * variance.clamp_min(VAR_FLOOR)  # cortex floors the variance here
        return mean * self.scale[1] + self.scale[0]

    def feasibility_logits(self, features: torch.Tensor,
                           member: int | None = None) -> torch.Tensor:
        """Each feasibility member's logits ``(E, B, 2)`` (``(1, B, 2)`` for one ``member``;
        class 1: feasible)."""
        pooled, members = self._pooled(self.feasible_branch, features, member)
        pooled = F.layer_norm(pooled, (BRANCH_DIM,), eps=NORM_EPS) * self.feasible_norm[members]
        return torch.baddbmm(self.feasible_bias[members], pooled, self.feasible_head[members])

    def _pooled(self, branch: ResidualBlocks, features: torch.Tensor,
                member: int | None) -> tuple[torch.Tensor, slice]:
        """A branch's outputs averaged over positions ``(M, B, BRANCH_DIM)``, and which
        members they are."""
        members = slice(None) if member is None else slice(member, member + 1)
        B = features.shape[0]
        pooled = branch(features, member).view(B, -1, BRANCH_DIM, features.shape[-1]).mean(-1)
        return pooled.transpose(0, 1), members

    def feasibility(self, features: torch.Tensor) -> torch.Tensor:
        """Each feasibility member's probability that a sequence is feasible ``(E, B)``."""
        return self.feasibility_logits(features).softmax(-1)[..., 1]

    def token_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Masked-language-model logits ``(B, L, v + 1)`` at every position."""
        h = F.layer_norm(features.transpose(1, 2), features.shape[1:2], self.token_norm,
                         eps=NORM_EPS)
        return F.linear(h, self.token_head, self.token_bias)
