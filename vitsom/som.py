"""Batch self-organising map layer, trained by gradient (the ViT-SOM "SOM layer").

Notation: a batch of latents ``z`` (B, D), prototypes ``w`` (K, D) on an H×W grid (K = H·W),
grid coordinates ``r`` (K, 2), temperature ``T``.

* distances  d[b, k]  (cosine ``1 − cos``, euclidean ``‖z − w‖₂``, manhattan ``‖z − w‖₁``)
* BMU        bmu[b] = argmin_k d[b, k]
* neighbourhood  h[b, k] = exp(−‖r_k − r_bmu[b]‖² / 2T²)   (no gradient: it depends on indices)
* loss       L_som = mean_{b,k} h[b, k] · d[b, k]

The loss is the authors' scale: a mean over batch *and* units, i.e. ``1/(B·K) ΣΣ h·d``. The paper
prints ``1/N ΣΣ h·d`` (a mean over the batch, a sum over units), which is K times larger. We follow
the code so that its γ values carry over; multiply γ by K to convert to the printed form.

Everything mathematical is a pure function here, so tests can check it against brute-force loops;
:class:`SOMLayer` only holds the parameters and the precomputed grid tables.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DISTANCES = ("cosine", "euclidean", "manhattan")
TOPOLOGIES = ("square", "hexagonal")
_TOPOLOGY_ALIASES = {"square": "square", "rect": "square", "rectangular": "square",
                     "hexagonal": "hexagonal", "hexa": "hexagonal", "hex": "hexagonal"}
# Grid distance up to which two units count as neighbours (for the topographic error):
# the 8-neighbourhood on a square grid (diagonals at √2), the 6-neighbourhood on a hex grid (1).
_NEIGHBOUR_RADIUS = {"square": math.sqrt(2.0), "hexagonal": 1.0}


def check_distance(distance: str) -> str:
    if distance not in DISTANCES:
        raise ValueError(f"unknown SOM distance {distance!r}; choose one of {', '.join(DISTANCES)}")
    return distance


def check_topology(topology: str) -> str:
    if topology not in _TOPOLOGY_ALIASES:
        raise ValueError(f"unknown SOM topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}")
    return _TOPOLOGY_ALIASES[topology]


# ----------------------------------------------------------------------------- distances

def cosine_distance(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``1 − cos(z_b, w_k)`` for all pairs, (B, D) × (K, D) → (B, K), one normalised matmul."""
    return 1.0 - F.normalize(z, dim=-1) @ F.normalize(w, dim=-1).transpose(-1, -2)


def euclidean_distance(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``‖z_b − w_k‖₂`` (not squared, as ``torch.cdist``) via ``‖z‖² + ‖w‖² − 2 z·w``.

    Never forms a B×K×D tensor. Squared distances are clamped at a tiny positive value before the
    square root so that coincident points give 0 distance and a finite gradient."""
    sq = (z * z).sum(-1, keepdim=True) + (w * w).sum(-1).unsqueeze(-2) - 2.0 * (z @ w.transpose(-1, -2))
    return sq.clamp_min(1e-12).sqrt()


class _ManhattanChunked(torch.autograd.Function):
    """Exact L1 distance, computed in chunks of prototypes so peak memory is bounded.

    Backward recomputes the signs chunk by chunk instead of saving a B×K×D tensor:
    dL/dz_b = Σ_k g_bk sign(z_b − w_k),  dL/dw_k = −Σ_b g_bk sign(z_b − w_k)."""

    @staticmethod
    def forward(ctx, z, w, chunk):  # type: ignore[override]
        ctx.save_for_backward(z, w)
        ctx.chunk = chunk
        out = z.new_empty(z.shape[0], w.shape[0])
        for s in range(0, w.shape[0], chunk):
            out[:, s:s + chunk] = (z[:, None, :] - w[None, s:s + chunk, :]).abs_().sum(-1)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        z, w = ctx.saved_tensors
        gz = torch.zeros_like(z) if ctx.needs_input_grad[0] else None
        gw = torch.zeros_like(w) if ctx.needs_input_grad[1] else None
        for s in range(0, w.shape[0], ctx.chunk):
            gs = (z[:, None, :] - w[None, s:s + ctx.chunk, :]).sign_()         # (B, k, D)
            gs.mul_(grad[:, s:s + ctx.chunk, None])                            # g_bk · sign
            if gz is not None:
                gz += gs.sum(1)
            if gw is not None:
                gw[s:s + ctx.chunk] = -gs.sum(0)
        return gz, gw, None


def manhattan_distance(z: torch.Tensor, w: torch.Tensor, max_chunk_bytes: int | None = None) -> torch.Tensor:
    """``‖z_b − w_k‖₁`` for all pairs, exact, chunked over prototypes (≤ ``max_chunk_bytes`` each).

    Default chunk: 4 MiB on the CPU, where a chunk that stays in cache makes the 3136-d 40×40
    forward+backward about 10× faster than 256 MiB chunks; 256 MiB on a GPU (fewer kernel launches)."""
    if max_chunk_bytes is None:
        max_chunk_bytes = (4 if z.device.type == "cpu" else 256) * 2**20
    per_unit = max(1, z.shape[0] * z.shape[1] * z.element_size())
    chunk = max(1, min(w.shape[0], max_chunk_bytes // per_unit))
    return _ManhattanChunked.apply(z, w, chunk)


def pairwise_distance(z: torch.Tensor, w: torch.Tensor, distance: str = "cosine") -> torch.Tensor:
    """(B, D) × (K, D) → (B, K) distances by name (``cosine``, ``euclidean`` or ``manhattan``)."""
    check_distance(distance)
    if z.shape[-1] != w.shape[-1]:
        raise ValueError(f"latent dim {z.shape[-1]} does not match prototype dim {w.shape[-1]}")
    if distance == "cosine":
        return cosine_distance(z, w)
    if distance == "euclidean":
        return euclidean_distance(z, w)
    return manhattan_distance(z, w)


# ----------------------------------------------------------------------------- grid

def grid_coordinates(height: int, width: int, topology: str = "square") -> torch.Tensor:
    """(K, 2) float coordinates of the units, row-major (unit k = row·width + col).

    square: (row, col). hexagonal (offset rows): (row·√3/2, col + ½·[row odd]), so all six
    neighbours of a unit lie at distance exactly 1."""
    topology = check_topology(topology)
    if height < 1 or width < 1:
        raise ValueError(f"SOM grid must be at least 1×1, got {height}×{width}")
    rows = torch.arange(height, dtype=torch.float64).repeat_interleave(width)
    cols = torch.arange(width, dtype=torch.float64).repeat(height)
    if topology == "hexagonal":
        cols = cols + 0.5 * (rows % 2)
        rows = rows * math.sqrt(3.0) / 2.0
    return torch.stack([rows, cols], dim=1).float()


def grid_sq_distances(coords: torch.Tensor) -> torch.Tensor:
    """(K, K) table of squared grid distances ``‖r_i − r_j‖²`` (computed once, gathered per step)."""
    c = coords.double()
    return ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1).float()


def neighbourhood(grid_sq: torch.Tensor, bmu: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """Gaussian neighbourhood weights (B, K): ``exp(−‖r_k − r_bmu‖² / 2T²)`` gathered from the table."""
    return torch.exp(-grid_sq[bmu] / (2.0 * torch.as_tensor(temperature, device=grid_sq.device) ** 2))


def som_loss(dist: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over batch and units of ``h·d`` (the authors' scale; see the module docstring)."""
    return (weights.detach() * dist).mean()


# ----------------------------------------------------------------------------- schedules

def temperature_at(step, total_steps: int, t_max: float, t_min: float):
    """Exponential decay per step: ``T(t) = Tmax·(Tmin/Tmax)^(t/(S−1))``; T(0)=Tmax, T(S−1)=Tmin.

    ``step`` may be an int or a tensor (no host sync). Steps beyond S−1 keep decaying geometrically."""
    frac = step / max(total_steps - 1, 1)
    if isinstance(frac, torch.Tensor):
        return t_max * torch.pow(torch.as_tensor(t_min / t_max, dtype=frac.dtype, device=frac.device), frac)
    return t_max * (t_min / t_max) ** frac


def gamma_at(step, total_steps: int, gamma: float, warmup: bool = True):
    """γ warm-up: ``γ·min(1, t/⌊S/2⌋)`` (linear over the first half of training), or γ when off."""
    if not warmup:
        return gamma if not isinstance(step, torch.Tensor) else torch.full_like(step, gamma, dtype=torch.float32)
    half = max(total_steps // 2, 1)
    if isinstance(step, torch.Tensor):
        return gamma * torch.clamp(step.float() / half, max=1.0)
    return gamma * min(1.0, step / half)


# ----------------------------------------------------------------------------- map quality

def quantization_error(dist: torch.Tensor) -> torch.Tensor:
    """Mean distance of each sample to its BMU, in the map's own distance."""
    return dist.min(dim=1).values.mean()


def topographic_error(dist: torch.Tensor, coords: torch.Tensor, topology: str = "square") -> torch.Tensor:
    """Fraction of samples whose first and second BMU are not grid neighbours.

    Neighbours: the 8 surrounding units on a square grid, the 6 on a hexagonal grid."""
    if dist.shape[1] < 2:
        return dist.new_zeros(())
    top2 = dist.topk(2, dim=1, largest=False).indices
    gap = (coords[top2[:, 0]] - coords[top2[:, 1]]).norm(dim=1)
    return (gap > _NEIGHBOUR_RADIUS[check_topology(topology)] + 1e-4).float().mean()


# ----------------------------------------------------------------------------- layer

@dataclass
class SOMOutput:
    distances: torch.Tensor  # (B, K)
    bmu: torch.Tensor        # (B,) int64
    loss: torch.Tensor       # scalar


class SOMLayer(nn.Module):
    """Prototypes (K×D, ``nn.Parameter``) on an H×W grid with a differentiable batch-SOM loss."""

    def __init__(self, height: int, width: int, dim: int, distance: str = "cosine",
                 topology: str = "square") -> None:
        super().__init__()
        if height < 1 or width < 1:
            raise ValueError(f"SOM grid must be at least 1×1, got {height}×{width}")
        if dim < 1:
            raise ValueError(f"SOM latent dim must be positive, got {dim}")
        self.height, self.width, self.dim = height, width, dim
        self.distance = check_distance(distance)
        self.topology = check_topology(topology)
        # Reference init: U[0,1), rows L2-normalised for the cosine distance.
        w = torch.rand(height * width, dim)
        if self.distance == "cosine":
            w = F.normalize(w, dim=1)
        self.prototypes = nn.Parameter(w)
        coords = grid_coordinates(height, width, self.topology)
        self.register_buffer("coords", coords, persistent=False)
        self.register_buffer("grid_sq", grid_sq_distances(coords), persistent=False)

    @property
    def num_units(self) -> int:
        return self.height * self.width

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B, K) distances, always in fp32, also inside a bf16 autocast region.

        The authors compute them in fp32 (TF32 matmuls on a GPU, output fp32). Under bf16
        autocast the matmul would return bf16: a cosine distance then moves in steps of about
        0.004, and the ``‖z‖² + ‖w‖² − 2 z·w`` form of the euclidean distance cancels badly,
        which changes BMUs (the book's deviation list gives the measured share)."""
        with torch.autocast(z.device.type, enabled=False):
            return pairwise_distance(z.float(), self.prototypes.float(), self.distance)

    def forward(self, z: torch.Tensor, temperature: torch.Tensor | float) -> SOMOutput:
        """z: (B, D) latents → distances (B, K), BMUs (B,), SOM loss at ``temperature``."""
        d = self.distances(z)
        bmu = d.detach().argmin(dim=1)
        h = neighbourhood(self.grid_sq, bmu, temperature).to(d.dtype)
        return SOMOutput(d, bmu, som_loss(d, h))

    def extra_repr(self) -> str:
        return f"{self.height}x{self.width}, dim={self.dim}, distance={self.distance}, topology={self.topology}"
