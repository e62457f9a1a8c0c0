"""The arm_jax visual tokenizer's pixel decoder in plain PyTorch: image codes -> RGB pixels.

Standalone on purpose (torch and safetensors only): `arm-jax export-hf` copies this file into the
export directory as pixel_decoder.py, beside pixel_decoder.safetensors and pixel_decoder.json.

    from pixel_decoder import PixelDecoder
    dec = PixelDecoder.from_pretrained("export_dir")
    images = dec(codes)          # codes [b, h, w] int64 in [0, codebook_size) -> [b, H, W, 3] uint8

Same computation as arm_jax/tokenizer/model.py PixelDecoder: code vectors (FSQ digits, or the
unit VQ codebook) -> linear + learned positions -> pre-LN ViT blocks (biased MHA, gelu-tanh MLP)
-> LayerNorm -> linear to p*p*3 per patch -> unpatchify -> round((x + 1) * 127.5) clipped.
"""
from __future__ import annotations

import json
import math
import os

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

CONFIG = "pixel_decoder.json"
WEIGHTS = "pixel_decoder.safetensors"


class Attention(nn.Module):
  def __init__(self, d: int, n_heads: int):
    super().__init__()
    self.n_heads = n_heads
    self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    b, n, d = x.shape
    split = lambda t: t.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)
    q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads), dim=-1)
    return self.out_proj((w @ v).transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
  def __init__(self, d: int, d_ff: int):
    super().__init__()
    self.fc1, self.fc2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
  def __init__(self, d: int, n_heads: int, d_ff: int, eps: float):
    super().__init__()
    self.layer_norm1, self.layer_norm2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
    self.self_attn, self.mlp = Attention(d, n_heads), MLP(d, d_ff)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = x + self.self_attn(self.layer_norm1(x))
    return x + self.mlp(self.layer_norm2(x))


class PixelDecoder(nn.Module):
  """codes [b, h, w] int -> images [b, h*p, w*p, 3] uint8 (config: see pixel_decoder.json)."""

  def __init__(self, config: dict):
    super().__init__()
    self.config = config
    d, q = config["d_model"], config["code_dim"]
    self.grid, self.patch = config["grid"], config["patch_size"]
    self.proj = nn.Linear(q, d)
    self.position_embedding = nn.Parameter(torch.zeros(self.grid * self.grid, d))
    self.layers = nn.ModuleList(Block(d, config["n_heads"], config["d_ff"], config["norm_eps"])
                                for _ in range(config["n_layers"]))
    self.norm = nn.LayerNorm(d, eps=config["norm_eps"])
    self.to_patches = nn.Linear(d, self.patch * self.patch * 3)
    if config["quantizer"] == "vq":
      self.register_buffer("codebook_unit", torch.zeros(config["codebook_size"], q))
    else:
      levels = torch.tensor(config["fsq_levels"], dtype=torch.int64)
      basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.int64), levels[:-1]]), 0)
      self.register_buffer("levels", levels, persistent=False)
      self.register_buffer("basis", basis, persistent=False)

  @classmethod
  def from_pretrained(cls, directory: str) -> "PixelDecoder":
    with open(os.path.join(directory, CONFIG)) as f:
      model = cls(json.load(f))
    model.load_state_dict(load_file(os.path.join(directory, WEIGHTS)))
    return model.eval()

  def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
    """[b, n] int -> [b, n, code_dim] float32."""
    if self.config["quantizer"] == "vq":
      return self.codebook_unit[codes]
    digits = (codes[..., None] // self.basis) % self.levels
    half = torch.div(self.levels, 2, rounding_mode="floor").float()
    return (digits.float() - half) / half

  def decode_float(self, codes: torch.Tensor) -> torch.Tensor:
    """codes [b, h, w] -> images [b, H, W, 3] float32 in about [-1, 1]."""
    b = codes.shape[0]
    x = self.proj(self.code_vectors(codes.reshape(b, -1).long())) + self.position_embedding
    for layer in self.layers:
      x = layer(x)
    x = self.to_patches(self.norm(x))
    p, g = self.patch, self.grid
    return x.view(b, g, g, p, p, 3).permute(0, 1, 3, 2, 4, 5).reshape(b, g * p, g * p, 3)

  @torch.no_grad()
  def forward(self, codes: torch.Tensor) -> torch.Tensor:
    size = self.config["codebook_size"]
    if codes.shape[1:] != (self.grid, self.grid):
      raise ValueError(f"codes have shape {tuple(codes.shape)}; this decoder takes "
                       f"[b, {self.grid}, {self.grid}]")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= size):
      raise ValueError(f"codes must lie in [0, {size})")
    x = self.decode_float(codes)
    return torch.clamp(torch.round((x + 1.0) * 127.5), 0, 255).to(torch.uint8)
