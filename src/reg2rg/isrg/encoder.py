"""The 3D ViT image encoder: window attention with a few global layers, then a neck (SAM-Med3D's layout).

Its parameter names are SAM-Med3D's ``image_encoder.*`` names (``patch_embed.proj``, ``pos_embed`` of shape
(1, D, H, W, C), ``blocks.i.{norm1, attn.qkv, attn.proj, attn.rel_pos_d/h/w, norm2, mlp.lin1, mlp.lin2}``,
``neck.0-3``), so ``load_sam_med3d_encoder`` reads that checkpoint's encoder without renaming.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..models.pretrained import mismatch_report, read_tensors


class LayerNorm3d(nn.Module):
    """LayerNorm over the channels of (B, C, D, H, W)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.movedim(1, -1), (x.shape[1],), self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class PatchEmbed3D(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 4, 1)  # (B, C, D, H, W) -> (B, D, H, W, dim)


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.gelu(self.lin1(x)))


class Attention3D(nn.Module):
    """Multi-head attention over a (B, D, H, W, C) grid, with optional decomposed relative positions."""

    def __init__(self, dim: int, heads: int, grid: int, use_rel_pos: bool):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:  # one table per axis: offsets -(grid-1) .. grid-1
            self.rel_pos_d = nn.Parameter(torch.zeros(2 * grid - 1, dim // heads))
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid - 1, dim // heads))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid - 1, dim // heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w, c = x.shape
        q, k, v = self.qkv(x).reshape(b, d * h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # 3 x (B, h, N, c/h)
        bias = self._relative_bias(q, (d, h, w)) if self.use_rel_pos else None
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(x.transpose(1, 2).reshape(b, d, h, w, c))

    def _relative_bias(self, q: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
        """(B, heads, N, N): q . r_d[i_d - j_d] + q . r_h[i_h - j_h] + q . r_w[i_w - j_w] (decomposed)."""
        b, heads, n, c = q.shape
        tables = []
        for table, length in zip((self.rel_pos_d, self.rel_pos_h, self.rel_pos_w), size):
            if table.shape[0] != 2 * length - 1:
                raise ValueError(f"relative position table of {table.shape[0]} rows for an axis of {length} cells")
            offsets = torch.arange(length)[:, None] - torch.arange(length)[None, :] + length - 1
            tables.append(table[offsets])  # (L_q, L_k, c)
        q = q.reshape(b, heads, *size, c)
        rel_d = torch.einsum("bndhwc,dkc->bndhwk", q, tables[0])  # (B, heads, D, H, W, D_k)
        rel_h = torch.einsum("bndhwc,hkc->bndhwk", q, tables[1])
        rel_w = torch.einsum("bndhwc,wkc->bndhwk", q, tables[2])
        bias = rel_d[..., :, None, None] + rel_h[..., None, :, None] + rel_w[..., None, None, :]
        return bias.reshape(b, heads, n, n)


class Block3D(nn.Module):
    """Pre-norm transformer block; ``window`` > 0 attends within non-overlapping cubes (padded), 0: globally."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, window: int, grid: int, use_rel_pos: bool):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention3D(dim, heads, window if window > 0 else grid, use_rel_pos)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            b, d, h, w, c = x.shape
            windows, padded = window_partition(x, self.window)
            x = window_unpartition(self.attn(windows), self.window, padded, (b, d, h, w, c))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(B, D, H, W, C) -> (B * windows, w, w, w, C), zero-padding each axis to a multiple of ``window``."""
    b, d, h, w, c = x.shape
    pad = [(-n) % window for n in (d, h, w)]
    x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
    dp, hp, wp = d + pad[0], h + pad[1], w + pad[2]
    x = x.view(b, dp // window, window, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, window, window, window, c), (dp, hp, wp)


def window_unpartition(windows: torch.Tensor, window: int, padded, shape) -> torch.Tensor:
    """The inverse of ``window_partition``: back to ``shape`` (B, D, H, W, C), padding dropped."""
    b, d, h, w, c = shape
    dp, hp, wp = padded
    x = windows.view(b, dp // window, hp // window, wp // window, window, window, window, c)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, dp, hp, wp, c)
    return x[:, :d, :h, :w].contiguous()


class ImageEncoder3D(nn.Module):
    """(B, in_chans, S, S, S) -> (B, out_chans, S/p, S/p, S/p) image embeddings."""

    def __init__(
        self,
        img_size: int = 32,
        patch_size: int = 4,
        in_chans: int = 1,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        out_chans: int = 64,
        window_size: int = 4,
        global_attn_indexes: tuple[int, ...] = (1, 3),
        use_rel_pos: bool = False,
    ):
        super().__init__()
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed3D(patch_size, in_chans, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, grid, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            Block3D(dim, heads, mlp_ratio, 0 if i in global_attn_indexes else window_size, grid, use_rel_pos)
            for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv3d(dim, out_chans, kernel_size=1, bias=False),
            LayerNorm3d(out_chans),
            nn.Conv3d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm3d(out_chans),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(image) + self.pos_embed  # (B, g, g, g, dim)
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 4, 1, 2, 3))


def load_sam_med3d_encoder(encoder: ImageEncoder3D, path: str | Path) -> None:
    """Load the ``image_encoder.*`` weights of a SAM-Med3D checkpoint (``.pth`` read with weights_only, its
    ``model_state_dict`` entry when present, or ``.safetensors``) into ``encoder``. The encoder must have the
    checkpoint's geometry (SAM-Med3D vit_b_ori: img_size 128, patch_size 16, dim 768, depth 12, heads 12,
    mlp_ratio 4, out_chans 384, window_size 14, global_attn_indexes (2, 5, 8, 11), use_rel_pos true); any
    missing, unexpected or mis-shaped key is an error naming the file."""
    state = read_tensors(path)
    state = state.get("model_state_dict", state)
    prefix = "image_encoder."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise ValueError(f"{path}: no '{prefix}*' keys; is this a SAM-Med3D checkpoint?")
    problems = mismatch_report(encoder.state_dict(), weights)
    if problems:
        raise ValueError(f"{path}: the encoder does not match the checkpoint: {problems}")
    encoder.load_state_dict(weights)
