"""RadFM's 3D vision transformer, with a state_dict layout that loads ``RadFM_vit3d.pth`` strictly.

Defaults are RadFM's geometry (image 512, frames 512, patch 32 x 32 x 4, dim 768, depth 12,
heads 8 x 64, mlp 2048, 3 channels, dropout 0.1): 141 tensors, 66,208,000 parameters.
Reg2RG's light mask encoder is the same module with ``MASK_ENCODER`` arguments.

Layout (RadFM): patch embedding ``Rearrange -> LayerNorm(patch_dim) -> Linear -> LayerNorm(dim)``;
three learned position tables (rows, columns, depth) of width ``dim // 3`` concatenated;
pre-norm blocks (qkv without bias, FF Linear-GELU-Dropout-Linear-Dropout); no CLS token, no final norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

# Reg2RG's geometry encoder: 3 layers, one channel, 256 x 256 x 64 masks -> 8 x 8 x 4 = 256 tokens of width 255.
MASK_ENCODER: dict[str, int | float] = dict(
    image_size=256,
    frames=64,
    image_patch_size=32,
    frame_patch_size=16,
    dim=255,
    depth=3,
    heads=8,
    dim_head=64,
    mlp_dim=512,
    channels=1,
    dropout=0.1,
    emb_dropout=0.1,
)


def position_indices(cells: int, table_length: int) -> torch.Tensor:
    """RadFM's rule for a grid of ``cells`` on an axis whose table has ``table_length`` rows."""
    if not 0 < cells <= table_length:
        raise ValueError(f"a grid of {cells} patches does not fit a position table of {table_length} rows")
    return (torch.arange(cells) + 1) * (table_length // cells) - 1


class PositionEmbedding3D(nn.Module):
    """Learned row / column / depth tables, each ``width`` wide, concatenated per patch."""

    def __init__(self, width: int, rows: int, cols: int, depth: int):
        super().__init__()
        self.row_embed = nn.Embedding(rows, width)
        self.col_embed = nn.Embedding(cols, width)
        self.dep_embed = nn.Embedding(depth, width)

    def forward(self, h: int, w: int, d: int) -> torch.Tensor:
        device = self.row_embed.weight.device
        rows = self.row_embed(position_indices(h, self.row_embed.num_embeddings).to(device))  # (h, C)
        cols = self.col_embed(position_indices(w, self.col_embed.num_embeddings).to(device))  # (w, C)
        deps = self.dep_embed(position_indices(d, self.dep_embed.num_embeddings).to(device))  # (d, C)
        grid = torch.cat(
            [
                rows[:, None, None].expand(h, w, d, -1),
                cols[None, :, None].expand(h, w, d, -1),
                deps[None, None, :].expand(h, w, d, -1),
            ],
            dim=-1,
        )  # (h, w, d, 3C)
        return grid.reshape(h * w * d, -1)  # (N, 3C), patch order (h w d) as the patch embedding


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head self-attention; dropout on the attention weights and on the output, as RadFM."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (rearrange(t, "b n (h e) -> b h n e", h=self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(rearrange(out, "b h n e -> b n (h e)"))  # (B, N, dim)


class Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(dim, Attention(dim, heads, dim_head, dropout)),
                    PreNorm(dim, FeedForward(dim, mlp_dim, dropout)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, feed_forward in self.layers:
            x = x + attention(x)
            x = x + feed_forward(x)
        return x


class ViT3D(nn.Module):
    """Volumes (B, C, X, Y, Z) -> patch tokens (B, X/p * Y/p * Z/pf, dim), patch order (x y z).

    ``image_size`` and ``frames`` size the position tables (the largest input); smaller inputs use
    RadFM's strided subset of table rows, so a 256 x 256 x 64 volume gives 8 x 8 x 16 = 1024 tokens.
    """

    def __init__(
        self,
        image_size: int = 512,
        frames: int = 512,
        image_patch_size: int = 32,
        frame_patch_size: int = 4,
        dim: int = 768,
        depth: int = 12,
        heads: int = 8,
        dim_head: int = 64,
        mlp_dim: int = 2048,
        channels: int = 3,
        dropout: float = 0.1,
        emb_dropout: float = 0.1,
    ):
        super().__init__()
        if image_size % image_patch_size or frames % frame_patch_size:
            raise ValueError(
                f"patches {image_patch_size} x {image_patch_size} x {frame_patch_size} must divide "
                f"the table geometry {image_size} x {image_size} x {frames}"
            )
        if dim % 3:
            raise ValueError(f"dim must be divisible by 3 (three position tables of dim // 3), got {dim}")
        self.patch = (image_patch_size, image_patch_size, frame_patch_size)
        self.channels = channels
        self.dim = dim
        patch_dim = channels * image_patch_size * image_patch_size * frame_patch_size
        self.to_patch_embedding = nn.Sequential(
            Rearrange(
                "b c (h p1) (w p2) (d pf) -> b (h w d) (p1 p2 pf c)",
                p1=image_patch_size,
                p2=image_patch_size,
                pf=frame_patch_size,
            ),
            nn.LayerNorm(patch_dim),
            nn.Linear(patch_dim, dim),
            nn.LayerNorm(dim),
        )
        grid = image_size // image_patch_size
        self.pos_embedding = PositionEmbedding3D(dim // 3, grid, grid, frames // frame_patch_size)
        self.dropout = nn.Dropout(emb_dropout)
        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim, dropout)

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        if volumes.ndim != 5 or volumes.shape[1] != self.channels:
            raise ValueError(f"expected volumes (B, {self.channels}, X, Y, Z), got {tuple(volumes.shape)}")
        size = volumes.shape[2:]
        if any(s % p for s, p in zip(size, self.patch)):
            raise ValueError(f"volume size {tuple(size)} is not divisible by the patch size {self.patch}")
        x = self.to_patch_embedding(volumes)  # (B, N, dim)
        x = x + self.pos_embedding(*(s // p for s, p in zip(size, self.patch)))
        return self.transformer(self.dropout(x))  # (B, N, dim)
