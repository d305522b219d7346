"""The Reg2RG model: RadFM-layout encoders, region tokens, index splicing into a LoRA LLM, checkpoints."""

from .checkpoint import from_pretrained, save_checkpoint
from .llm import LLMConfig, build_llm
from .perceiver import PerceiverResampler
from .pretrained import load_pretrained, read_tensors
from .reg2rg import Generation, Reg2RG
from .region_tokens import VisualTokenEncoder
from .splice import Splicer
from .vit3d import MASK_ENCODER, ViT3D

__all__ = [
    "MASK_ENCODER",
    "Generation",
    "LLMConfig",
    "PerceiverResampler",
    "Reg2RG",
    "Splicer",
    "ViT3D",
    "VisualTokenEncoder",
    "build_llm",
    "from_pretrained",
    "load_pretrained",
    "read_tensors",
    "save_checkpoint",
]
