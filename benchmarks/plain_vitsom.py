"""A deliberately plain eager fp32 ViT-SOM training step: the benchmark's baseline.

It computes the same function as ``vitsom`` (same parameter names, so a state dict loads into
either) the way a straightforward port of the authors' code would: attention written out
(scores materialised, softmax, times V), the neighbourhood from a (B, K, 2) coordinate
difference (sqrt, then squared), a per-sample ``DataLoader`` that converts each image on the CPU,
and a host sync per step (the γ ramp read back with ``.item()``). ``tests/test_speed_paths.py``
checks that it and the fast path agree.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vitsom.vit import ViTSOM


class PlainAttention(nn.Module):
    def __init__(self, attn) -> None:
        super().__init__()
        self.heads, self.qkv, self.proj = attn.heads, attn.qkv, attn.proj

    def forward(self, x):
        B, T, C = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.heads)
        att = att.softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))


def make_plain(model: ViTSOM) -> ViTSOM:
    """Swap in written-out attention (sharing the parameters of ``model``)."""
    for blk in list(model.vit.blocks) + list(getattr(model.vit, "decoder_blocks", [])):
        blk.attn = PlainAttention(blk.attn)
    return model


def plain_som_loss(model: ViTSOM, z: torch.Tensor, temperature: float):
    w = model.som.prototypes
    d = 1 - F.normalize(z, dim=1) @ F.normalize(w, dim=1).t()
    bmu = d.argmin(dim=1)
    coords = model.som.coords
    diff = coords[None, :, :] - coords[bmu][:, None, :]               # (B, K, 2)
    h = torch.exp(-(diff.norm(dim=2) ** 2) / (2 * temperature ** 2))
    return (h.detach() * d).mean(), bmu


class PerSampleImages(Dataset):
    def __init__(self, images_uint8: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images_uint8, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].float() / 255.0, int(self.labels[i])


def plain_loader(images_uint8, labels, batch_size: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(PerSampleImages(images_uint8, labels), batch_size=batch_size, shuffle=True,
                      drop_last=True, generator=g, num_workers=0)


def plain_step(model: ViTSOM, opt, x: torch.Tensor, step: int, total_steps: int, t_max: float, t_min: float,
               gamma: float) -> float:
    temperature = t_max * (t_min / t_max) ** (step / (total_steps - 1))
    g = torch.tensor(gamma * min(1.0, step / (total_steps // 2)))
    tokens = model.vit.encode(x)
    recon = model.vit.decode(tokens)
    som_loss, _ = plain_som_loss(model, tokens[:, 1:].flatten(1), temperature)
    loss = F.l1_loss(recon, x) + g.item() * som_loss                    # host sync, as the reference
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()
