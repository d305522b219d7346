"""The paper's CE labeler: CT-CLIP's RadBERT classifier, loaded from local files (``ce=radbert``).

RadBERT-RoBERTa-4m (hidden 768) with Linear(768, 18) on the pooler output; a label is present when
its sigmoid is >= 0.5. Inputs are tokenized as the official script does: ``AutoTokenizer`` with
``do_lower_case=True``, truncation to 512 tokens. RoBERTa's byte-level BPE tokenizer ignores
``do_lower_case`` (checked with transformers 5), so the text keeps its case, as it did when the
paper's labels were made. Batches are padded to their longest text, which with the attention mask
gives the same outputs as padding to 512.

Files: ``model_dir`` holds RadBERT's config and tokenizer (a local copy of zzxslp/RadBERT-RoBERTa-4m;
its weights are not needed), ``classifier_path`` the fine-tuned state dict (``RadBertClassifier.pth``,
keys ``model.*`` and ``classifier.*``), read with ``weights_only=True``. Its ``model.embeddings.position_ids``
entry, which newer transformers no longer keep as a weight, is dropped. Python code in ``model_dir``
(``auto_map``) never runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from reg2rg.constants import CT_RATE_LABELS
from reg2rg.models.pretrained import read_tensors

IGNORED_KEYS = ("position_ids",)


class RadBertClassifier(nn.Module):
    """RadBERT encoder (architecture from ``model_dir``'s config) + a linear head on the pooler output."""

    def __init__(self, model_dir: str | Path, n_labels: int):
        super().__init__()
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
        self.model = AutoModel.from_config(config, trust_remote_code=False)
        self.classifier = nn.Linear(self.model.config.hidden_size, n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # (B, L) token ids and mask -> (B, n_labels) logits
        return self.classifier(self.model(input_ids=input_ids, attention_mask=attention_mask).pooler_output)


def load_classifier_state(classifier: RadBertClassifier, path: str | Path) -> None:
    """Load the fine-tuned weights; any key other than the known ``position_ids`` must match exactly."""
    state = read_tensors(path)
    state = {key: value for key, value in state.items() if not key.endswith(IGNORED_KEYS)}
    problem = f"{path} does not fit a RadBERT classifier with {classifier.classifier.out_features} labels"
    try:
        missing, unexpected = classifier.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise ValueError(f"{problem}: {error}") from error
    if missing or unexpected:
        raise ValueError(f"{problem}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")


class RadBertLabeler:
    """Labels texts with the 18 CT-RATE labels by the RadBERT classifier; ``labeler(texts) -> (N, 18)``."""

    name = "radbert"
    labels: tuple[str, ...] = CT_RATE_LABELS

    def __init__(
        self,
        model_dir: str | Path,
        classifier_path: str | Path,
        batch_size: int = 16,
        device: str = "cpu",
        max_length: int = 512,
        threshold: float = 0.5,
    ):
        for path, what in ((Path(model_dir), "RadBERT model folder"), (Path(classifier_path), "classifier state dict")):
            if not path.exists():
                raise ValueError(f"{what} {path} does not exist (RadBERT loads from local files only)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, do_lower_case=True, trust_remote_code=False)
        self.classifier = RadBertClassifier(model_dir, len(self.labels))
        load_classifier_state(self.classifier, classifier_path)
        self.classifier.to(device).eval()
        self.device, self.batch_size, self.max_length, self.threshold = device, batch_size, max_length, threshold

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        batches = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                logits = self.classifier(encoded["input_ids"], encoded["attention_mask"])
            batches.append((torch.sigmoid(logits) >= self.threshold).to(torch.int8).cpu().numpy())
        return np.concatenate(batches) if batches else np.zeros((0, len(self.labels)), dtype=np.int8)
