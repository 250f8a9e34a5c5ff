"""The compact ViT of ViT-SOM: an MAE-style autoencoder without masking, plus a SOM side branch.

Shapes (MNIST recipe): x (B, 1, 28, 28) → patches N = (28/2)² = 196, width D = 16 →
tokens (B, 1+N, D) after the final LayerNorm → SOM latent z = flatten(tokens[:, 1:]) (B, N·D = 3136).
The decoder reconstructs the image from *all* encoder tokens (it never sees the prototypes).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .som import SOMLayer, SOMOutput

# SDPA's CPU kernel has no vmap batching rule; the per-member fallback is the fast option here
# (see Attention.forward), so its once-per-process performance warning is noise.
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented "
                        "the batching rule for aten::_scaled_dot_product")


def sincos_pos_embed_2d(dim: int, grid: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding (MAE recipe): (grid² [+1], dim), CLS row all zeros.

    Half the channels encode the row, half the column; each half is D/4 sin + D/4 cos at
    frequencies ω_k = 10000^(−k/(D/4))."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a width divisible by 4, got {dim}")
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    pos = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(pos, pos, indexing="ij")

    def axis(p: torch.Tensor) -> torch.Tensor:
        out = p.reshape(-1, 1) * omega[None, :]
        return torch.cat([out.sin(), out.cos()], dim=1)

    emb = torch.cat([axis(cols), axis(rows)], dim=1)  # MAE puts the width axis first
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], dim=0)
    return emb.float()


_written_out = [False]


@contextlib.contextmanager
def written_out_attention():
    """Context in which :class:`Attention` computes softmax(QKᵀ/√d)V with plain batched matmuls
    instead of the fused SDPA kernel. Seeds-together training on CUDA needs it: under ``vmap`` the
    fused CUDA kernels fail in the backward pass (torch 2.11, H200: "LSE is not correctly aligned"
    in fp32, "expected input and grad types to match" under bf16 autocast), while matmul and
    softmax batch everywhere. Same maths; the (T, T) attention is materialised."""
    prev, _written_out[0] = _written_out[0], True
    try:
        yield
    finally:
        _written_out[0] = prev


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        # Fused SDPA, except under written_out_attention (seeds together on CUDA, where the fused
        # kernels fail under vmap). Under vmap on the CPU, SDPA has no batching rule and runs member
        # by member (a C++ loop); measured on 2 CPU cores that is still 2.7x faster than the
        # written-out softmax(QK^T)V, which batches but materialises the (T, T) attention.
        if _written_out[0]:
            att = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)     # (B, heads, T, T)
            y = att.softmax(dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v)      # (B, heads, T, C/heads)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)). No dropout, no drop-path
    (the reference configures them but never applies them)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTAutoencoder(nn.Module):
    def __init__(self, img_size: int = 28, in_chans: int = 1, patch: int = 2, emb_dim: int = 16,
                 depth: int = 4, heads: int = 2, mlp_ratio: float = 4.0, dec_emb: int = 4,
                 dec_depth: int = 2, decoder: bool = True) -> None:
        super().__init__()
        if img_size % patch:
            raise ValueError(f"image size {img_size} is not divisible by patch size {patch}")
        self.img_size, self.in_chans, self.patch = img_size, in_chans, patch
        self.grid = img_size // patch
        self.num_patches = self.grid ** 2
        self.emb_dim = emb_dim
        self.patch_embed = nn.Conv2d(in_chans, emb_dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, emb_dim))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(emb_dim, self.grid)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(emb_dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(emb_dim, eps=1e-6)
        self.has_decoder = decoder
        if decoder:
            self.decoder_embed = nn.Linear(emb_dim, dec_emb)
            self.register_buffer("decoder_pos_embed", sincos_pos_embed_2d(dec_emb, self.grid)[None],
                                 persistent=False)
            self.decoder_blocks = nn.ModuleList(Block(dec_emb, heads, mlp_ratio) for _ in range(dec_depth))
            self.decoder_norm = nn.LayerNorm(dec_emb, eps=1e-6)
            self.decoder_pred = nn.Linear(dec_emb, patch * patch * in_chans)
        self._init_weights()

    def _init_weights(self) -> None:
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → final-norm tokens (B, 1+N, D), CLS first."""
        if x.shape[1:] != (self.in_chans, self.img_size, self.img_size):
            raise ValueError(f"expected images of shape ({self.in_chans}, {self.img_size}, {self.img_size}), "
                             f"got {tuple(x.shape[1:])}")
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed[:, 1:]   # (B, N, D)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 1+N, D) tokens → reconstructed image (B, C, H, W); no output activation."""
        x = self.decoder_embed(tokens) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_pred(self.decoder_norm(x))[:, 1:]                 # drop CLS: (B, N, p²C)
        return self.unpatchify(x)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        B, g, p, c = x.shape[0], self.grid, self.patch, self.in_chans
        x = x.reshape(B, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(B, c, g * p, g * p)


@dataclass
class ViTSOMOutput:
    tokens: torch.Tensor            # (B, 1+N, D) final-norm tokens
    z: torch.Tensor                 # (B, latent_dim) SOM input
    recon: torch.Tensor | None      # (B, C, H, W) for clustering, else None
    logits: torch.Tensor | None     # (B, classes) for classification, else None
    som: SOMOutput | None           # None when the model has no SOM


class ViTSOM(nn.Module):
    """ViT autoencoder + SOM on the flattened patch tokens (or the CLS token), + optional head.

    ``num_classes == 0``: clustering (decoder reconstructs the input). ``num_classes > 0``: a linear
    head on the CLS token; the decoder is not built (the reference runs it and discards the output,
    which changes no gradient). ``som_grid=(0, 0)`` builds no SOM (the plain ViT baseline)."""

    def __init__(self, img_size: int, in_chans: int, patch: int, emb_dim: int, depth: int, heads: int,
                 mlp_ratio: float, dec_emb: int, dec_depth: int, num_classes: int = 0,
                 som_grid: tuple[int, int] = (40, 40), distance: str = "cosine", topology: str = "square",
                 som_input: str = "patches") -> None:
        super().__init__()
        if som_input not in ("patches", "cls"):
            raise ValueError(f"unknown som_input {som_input!r}; choose 'patches' or 'cls'")
        self.num_classes, self.som_input = num_classes, som_input
        self.vit = ViTAutoencoder(img_size, in_chans, patch, emb_dim, depth, heads, mlp_ratio,
                                  dec_emb, dec_depth, decoder=num_classes == 0)
        self.latent_dim = emb_dim if som_input == "cls" else self.vit.num_patches * emb_dim
        self.som = SOMLayer(som_grid[0], som_grid[1], self.latent_dim, distance, topology) \
            if som_grid[0] * som_grid[1] > 0 else None
        self.head = None
        if num_classes > 0:
            self.head = nn.Linear(emb_dim, num_classes)
            nn.init.normal_(self.head.weight, std=0.02)

    def latent(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 0] if self.som_input == "cls" else tokens[:, 1:].flatten(1)

    def forward(self, x: torch.Tensor, temperature: torch.Tensor | float = 1.0) -> ViTSOMOutput:
        tokens = self.vit.encode(x)
        z = self.latent(tokens)
        som = self.som(z, temperature) if self.som is not None else None
        recon = self.vit.decode(tokens) if self.num_classes == 0 else None
        logits = self.head(tokens[:, 0]) if self.head is not None else None
        return ViTSOMOutput(tokens, z, recon, logits, som)

    @torch.no_grad()
    def decode_prototypes(self) -> torch.Tensor:
        """Prototypes through the decoder, as images (K, C, H, W): each prototype reshaped to
        (N, D), a zero CLS placeholder prepended. Prototypes are rescaled to the mean norm of
        LayerNorm outputs (√(N·D)) because cosine training leaves their norm free."""
        if self.som is None or self.num_classes or self.som_input != "patches":
            raise ValueError("decode_prototypes needs a clustering model with a SOM on patch tokens")
        w = self.som.prototypes
        w = F.normalize(w, dim=1) * math.sqrt(w.shape[1])
        tokens = w.view(-1, self.vit.num_patches, self.vit.emb_dim)
        tokens = torch.cat([tokens.new_zeros(tokens.shape[0], 1, tokens.shape[2]), tokens], dim=1)
        return torch.cat([self.vit.decode(t) for t in tokens.split(256)])


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters by part: encoder, decoder, head, som, and total (trainable only)."""
    parts = {"encoder": 0, "decoder": 0, "head": 0, "som": 0}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("som."):
            parts["som"] += p.numel()
        elif name.startswith("head."):
            parts["head"] += p.numel()
        elif ".decoder" in name:
            parts["decoder"] += p.numel()
        else:
            parts["encoder"] += p.numel()
    parts["total"] = sum(parts.values())
    return parts
