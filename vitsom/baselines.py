"""Baselines of the paper's tables: DESOM, the raw-pixel SOM, and a from-scratch ResNet34.

Each model has the interface of :class:`vitsom.vit.ViTSOM`, so :mod:`vitsom.train` trains and
scores it unchanged: ``forward(x, temperature=...)`` returns a :class:`~vitsom.vit.ViTSOMOutput`
(with ``tokens=None``) holding ``z`` (latent), ``recon`` (image or None), ``logits`` (or None) and
``som`` (a :class:`~vitsom.som.SOMOutput` or None), and the model has an attribute ``som`` (the
:class:`~vitsom.som.SOMLayer` or None). ``train.param_groups`` gives parameters named ``som.*`` and
``head.*`` their own weight decay, and ``vit.count_parameters`` counts names containing
``.decoder`` as decoder; the attribute names below follow both conventions.

Select one with ``cfg.model.arch``:

* ``"desom"``  DESOM (Forest et al.), as the authors re-implemented it (reference notes §1.4):
  a fully connected autoencoder in → 500 → 500 → 2000 → 10 (widths from ``cfg.model.hidden``),
  ReLU between layers, none on the latent; mirrored decoder with an identity output; Xavier-uniform
  weights and zero biases; a SOM on the 10-d latent (preset: 8×8, Manhattan, T 8 → 0.1, γ 0.001
  constant); loss L1(recon, x) + γ·L_som on images in [0, 1]. Adam, lr 1e-3, no schedule.
* ``"som"``    the raw-pixel SOM (the "SOM (24×24)" row): a :class:`SOMLayer` on the flattened
  pixels, nothing else. See :class:`PixelSOM` for the recipe and why.
* ``"resnet34"`` torchvision's ResNet34 from scratch, its stem sized to the images (see
  :class:`ResNet34Classifier`). No SOM.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .config import RunConfig
from .som import SOMLayer
from .vit import ViTSOMOutput

ARCHS = ("desom", "som", "resnet34")
# ResNet34 keeps torchvision's ImageNet stem (7×7 stride 2 + max-pool) from this image size up.
IMAGENET_STEM_MIN_SIZE = 128
DESOM_HIDDEN = (500, 500, 2000, 10)


def _mlp(dims: Sequence[int]) -> nn.Sequential:
    """Linear layers dims[0] → … → dims[-1], ReLU between them, no activation after the last.
    Xavier-uniform weights, zero biases (the reference's DESOM init)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        lin = nn.Linear(a, b)
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class MLPAutoencoder(nn.Module):
    """Symmetric fully connected autoencoder: ``in → hidden… → latent`` and back, identity output."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = DESOM_HIDDEN) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1 or in_dim < 1:
            raise ValueError(f"autoencoder widths must be positive, got input {in_dim} and hidden {hidden}")
        dims = (in_dim, *hidden)
        self.encoder = _mlp(dims)
        self.decoder = _mlp(dims[::-1])
        self.latent_dim = hidden[-1]


class DESOM(nn.Module):
    """Deep Embedded SOM: MLP autoencoder + SOM on its latent code (reference notes §1.4).

    x (B, C, H, W) in [0, 1] → flatten → encoder → z (B, hidden[-1]) → SOM; decoder(z) → recon
    (B, C, H, W). The decoder reconstructs from the latent, not from the prototypes."""

    def __init__(self, img_size: int, in_chans: int, hidden: Sequence[int] = DESOM_HIDDEN,
                 som_grid: tuple[int, int] = (8, 8), distance: str = "manhattan",
                 topology: str = "square") -> None:
        super().__init__()
        self.img_size, self.in_chans = img_size, in_chans
        self.ae = MLPAutoencoder(in_chans * img_size * img_size, hidden)
        self.latent_dim = self.ae.latent_dim
        self.som = SOMLayer(som_grid[0], som_grid[1], self.latent_dim, distance, topology) \
            if som_grid[0] * som_grid[1] > 0 else None
        self.head = None

    def forward(self, x: torch.Tensor, temperature: torch.Tensor | float = 1.0) -> ViTSOMOutput:
        z = self.ae.encoder(x.flatten(1))
        recon = self.ae.decoder(z).view(x.shape)
        som = self.som(z, temperature) if self.som is not None else None
        return ViTSOMOutput(None, z, recon, None, som)


class PixelSOM(nn.Module):
    """The raw-pixel SOM: a batch-trained :class:`SOMLayer` on flattened images, no encoder.

    The authors' repository has no code for this row, so the recipe is ours. It is "ViT-SOM without
    the ViT": the presets ``som-{mnist,fmnist,usps}`` copy the ``*-clustering-24x24`` recipe (cosine
    distance, T 20 → 0.001 per step, AdamW lr 0.01·B/256 with 25-epoch warm-up and cosine decay,
    prototype weight decay 0.01, 500 epochs, B 128) and change only the SOM's input, from the
    flattened patch tokens to the flattened pixels. The comparison with ViT-SOM therefore isolates
    the feature extractor. Cosine rather than Euclidean also because the paper argues for cosine,
    and because it ignores the overall ink/brightness of an image, which carries no class
    information. Differences forced by the missing encoder: there is no reconstruction term, so the
    loss is γ·L_som alone with γ = 1 and no γ warm-up (a ramp from 0 would make the first steps
    no-ops; with Adam the value of γ barely matters otherwise, but γ = 1 keeps the gradients far
    above Adam's ε given the loss's 1/(B·K) scale). Parameters: K·C·H·W (24×24 on MNIST:
    576·784 = 451,584), as in the paper's table (451K).
    """

    def __init__(self, img_size: int, in_chans: int, som_grid: tuple[int, int] = (24, 24),
                 distance: str = "cosine", topology: str = "square") -> None:
        super().__init__()
        if som_grid[0] * som_grid[1] < 1:
            raise ValueError(f"the raw-pixel SOM needs a map of at least 1×1, got {som_grid[0]}×{som_grid[1]}")
        self.img_size, self.in_chans = img_size, in_chans
        self.latent_dim = in_chans * img_size * img_size
        self.som = SOMLayer(som_grid[0], som_grid[1], self.latent_dim, distance, topology)
        self.head = None

    def forward(self, x: torch.Tensor, temperature: torch.Tensor | float = 1.0) -> ViTSOMOutput:
        z = x.flatten(1)
        return ViTSOMOutput(None, z, None, None, self.som(z, temperature))


class ResNet34Classifier(nn.Module):
    """torchvision ``resnet34(weights=None)`` trained from scratch, with a stem sized to the images.

    Images smaller than :data:`IMAGENET_STEM_MIN_SIZE` (MNIST, CIFAR, SVHN, PathMNIST, Tiny-ImageNet)
    get the usual CIFAR-style stem: the 7×7 stride-2 convolution becomes a 3×3 stride-1 padding-1
    convolution taking ``in_chans`` channels, and the max-pool is removed, so a 32×32 input reaches
    the last stage at 4×4 (28×28 → 4×4 too, 64×64 → 8×8) instead of 1×1. The new stem conv gets
    torchvision's own init (Kaiming normal, fan-out, ReLU). Larger images (Flowers17 at 224×224)
    keep torchvision's ImageNet stem (7×7 stride 2 and max-pool, 224 → 7×7 at the last stage); only
    its input channels follow ``in_chans``. Everything else is torchvision's ResNet34 (BasicBlocks
    [3, 4, 6, 3], BatchNorm, global average pooling). The final linear layer is stored as ``head``
    (same shape and default init as torchvision's ``fc``) so that the trainer treats it as it
    treats ViT-SOM's head. ``z`` is the 512-d pooled feature. ≈ 21.3M parameters for 10 classes
    (the paper lists 21.8M)."""

    def __init__(self, in_chans: int = 3, num_classes: int = 10, img_size: int = 32) -> None:
        super().__init__()
        from torchvision.models import resnet34
        if num_classes < 1:
            raise ValueError(f"ResNet34 is a classifier: num_classes must be ≥ 1, got {num_classes}")
        if img_size < 8:
            raise ValueError(f"ResNet34 needs images of at least 8×8 pixels, got img_size={img_size}")
        net = resnet34(weights=None, num_classes=num_classes)
        self.imagenet_stem = img_size >= IMAGENET_STEM_MIN_SIZE
        if self.imagenet_stem:
            if in_chans != 3:
                net.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
                nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        else:
            net.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
            net.maxpool = nn.Identity()
        self.head = net.fc
        net.fc = nn.Identity()
        self.backbone = net
        self.som = None

    def forward(self, x: torch.Tensor, temperature: torch.Tensor | float = 1.0) -> ViTSOMOutput:
        z = self.backbone(x)
        return ViTSOMOutput(None, z, None, self.head(z), None)


def build_baseline(cfg: RunConfig) -> nn.Module:
    """The baseline model named by ``cfg.model.arch`` (``desom``, ``som`` or ``resnet34``)."""
    m, s = cfg.model, cfg.som
    arch = m.arch.lower()
    grid = (s.height, s.width)
    if arch == "desom":
        if m.num_classes:
            raise ValueError("the DESOM baseline is a clustering model: set model.num_classes=0")
        return DESOM(m.img_size, m.in_chans, m.hidden or DESOM_HIDDEN, grid, s.distance, s.topology)
    if arch == "som":
        if m.num_classes:
            raise ValueError("the raw-pixel SOM baseline is a clustering model: set model.num_classes=0")
        return PixelSOM(m.img_size, m.in_chans, grid, s.distance, s.topology)
    if arch == "resnet34":
        if s.height * s.width or s.gamma:
            raise ValueError("the ResNet34 baseline has no SOM: set som.height=som.width=0 and som.gamma=0")
        return ResNet34Classifier(m.in_chans, m.num_classes, m.img_size)
    raise ValueError(f"unknown model.arch {m.arch!r}; choose vit or one of {', '.join(ARCHS)}")
