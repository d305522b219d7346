"""RadBERT labeler from local files, with a tiny random RoBERTa and a tokenizer trained here (offline)."""

import numpy as np
import pytest
import torch

from reg2rg.constants import CT_RATE_LABELS

TEXTS = [
    "No pleural effusion was detected.",
    "Cardiomegaly is observed.",
    "The heart is enlarged and a nodule is seen.",
]


@pytest.fixture(scope="module")
def radbert_files(tmp_path_factory):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig

    from reg2rg.evaluation.radbert import RadBertClassifier

    folder = tmp_path_factory.mktemp("radbert")
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(
        TEXTS * 4, vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tokenizer.save_model(str(folder))
    RobertaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    ).save_pretrained(folder)
    torch.manual_seed(0)
    classifier = RadBertClassifier(folder, len(CT_RATE_LABELS))
    state = classifier.state_dict()
    state["model.embeddings.position_ids"] = torch.arange(80)[None]  # what older transformers saved
    torch.save(state, folder / "RadBertClassifier.pth")
    return folder, folder / "RadBertClassifier.pth", classifier.eval()


def test_labels_equal_a_direct_forward_pass(radbert_files):
    from reg2rg.evaluation.radbert import RadBertLabeler

    folder, weights, reference = radbert_files
    labeler = RadBertLabeler(folder, weights, batch_size=2, max_length=64, threshold=0.5)
    labels = labeler(TEXTS)
    assert labels.shape == (3, 18) and set(np.unique(labels)) <= {0, 1}
    for text, row in zip(TEXTS, labels):  # one text at a time: no padding
        encoded = labeler.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            probabilities = torch.sigmoid(reference(encoded["input_ids"], encoded["attention_mask"]))[0]
        np.testing.assert_array_equal(row, (probabilities >= 0.5).numpy().astype(np.int8))


def test_state_dict_that_does_not_fit_is_refused(radbert_files, tmp_path):
    from reg2rg.evaluation.radbert import RadBertLabeler

    folder, weights, _ = radbert_files
    state = torch.load(weights, weights_only=True)
    state["classifier.weight"] = state["classifier.weight"][:5]
    del state["classifier.bias"]
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit a RadBERT classifier"):
        RadBertLabeler(folder, tmp_path / "wrong.pth")


def test_missing_files_are_named(tmp_path):
    from reg2rg.evaluation.radbert import RadBertLabeler

    with pytest.raises(ValueError, match="RadBERT model folder .* does not exist"):
        RadBertLabeler(tmp_path / "nowhere", tmp_path / "x.pth")


def test_a_safetensors_state_dict_with_position_ids_loads(radbert_files, tmp_path):
    """The classifier may come as safetensors too; the ``position_ids`` entry older transformers kept is dropped."""
    from safetensors.torch import save_file

    from reg2rg.evaluation.radbert import RadBertLabeler

    folder, weights, _ = radbert_files
    state = torch.load(weights, weights_only=True)
    assert "model.embeddings.position_ids" in state
    save_file({key: value.contiguous() for key, value in state.items()}, tmp_path / "RadBertClassifier.safetensors")
    from_safetensors = RadBertLabeler(folder, tmp_path / "RadBertClassifier.safetensors", max_length=64)
    np.testing.assert_array_equal(from_safetensors(TEXTS), RadBertLabeler(folder, weights, max_length=64)(TEXTS))
