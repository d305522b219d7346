"""Generation into the official predictions CSV: batched, resumable, crash-safe."""

from __future__ import annotations

import csv
import json

import pytest
from hydra import compose, initialize_config_dir
from test_model_helpers import VOLUME, tiny_model

from reg2rg.data.build import build_cache
from reg2rg.data.dataset import CachedRegionDataset
from reg2rg.data.preprocessing import PreprocessConfig
from reg2rg.data.readers import RadGenomeReader
from reg2rg.data.synthetic import SyntheticConfig, write_dataset
from reg2rg.inference import COLUMNS, generate_predictions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, SyntheticConfig(n_train=1, n_valid=5, shape=(40, 40, 20), seed=1))
    cfg = PreprocessConfig(target_size=VOLUME)
    build_cache(RadGenomeReader(root).read("valid").records, root / "cache", "valid", cfg)
    return CachedRegionDataset(root / "cache", "valid", cfg, shuffle_regions=False)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_predictions_csv_has_every_study_and_resumes(dataset, tmp_path):
    model = tiny_model()
    out = tmp_path / "predictions.csv"
    settings = {"max_new_tokens": 8}
    generate_predictions(model, dataset, out, batch_size=2, settings=settings, metadata={"split": "valid"})
    rows = _rows(out)
    assert tuple(rows[0]) == COLUMNS
    assert [r["AccNum"] for r in rows] == [e["study_id"] for e in dataset.entries]
    first = dataset[0]
    assert rows[0]["GT_combined_report"] == model.template.target(first["regions"], first["region_reports"])
    assert rows[0]["GT_combined_report"].startswith(f"The region 0 is {first['regions'][0]}: ")
    sidecar = json.loads(out.with_name(out.name + ".settings.json").read_text())
    assert sidecar["settings"] == settings and sidecar["split"] == "valid" and sidecar["studies"] == 5

    # An interrupted run: two finished rows and half of a third, with no newline.
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:10], encoding="utf-8")
    generate_predictions(model, dataset, out, batch_size=2, settings=settings)
    resumed = _rows(out)
    assert [r["AccNum"] for r in resumed] == [e["study_id"] for e in dataset.entries]
    assert resumed == rows  # greedy decoding: the same text for the studies generated again


def test_foreign_csv_is_refused(dataset, tmp_path):
    out = tmp_path / "other.csv"
    out.write_text("id,text\n1,a\n", encoding="utf-8")
    with pytest.raises(ValueError, match="other.csv"):
        generate_predictions(tiny_model(), dataset, out)


def test_generate_script_config_end_to_end(dataset, tmp_path):
    """The composed configs/generate.yaml drives checkpoint -> from_pretrained -> predictions CSV."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from reg2rg.inference import generate_from_config
    from reg2rg.models import save_checkpoint

    save_checkpoint(tiny_model(), tmp_path / "checkpoint")
    root = dataset.cache_dir.parent
    overrides = [
        f"checkpoint={tmp_path / 'checkpoint'}",
        "data=synthetic",
        f"data.root={root}",
        "generation.max_new_tokens=4",
        f"data.preprocessing.target_size=[{','.join(map(str, VOLUME))}]",
    ]
    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(version_base="1.3", config_dir=str(configs)):
        cfg = compose("generate", overrides=overrides)
    out = generate_from_config(cfg)
    assert out == tmp_path / "checkpoint" / "predictions_valid.csv"
    assert len(_rows(out)) == len(dataset)


@pytest.mark.slow
def test_generate_takes_the_data_settings_of_the_checkpoints_run(dataset, tmp_path):
    """Without data=..., generate.py reads the data of the run that wrote the checkpoint (<run>/config.yaml),
    as after the demo; a checkpoint outside a run folder gets an error that says what to pass."""
    import subprocess
    import sys
    from pathlib import Path

    from omegaconf import OmegaConf

    from reg2rg.models import save_checkpoint

    repo = Path(__file__).resolve().parents[1]
    run_dir = tmp_path / "run"
    checkpoint = save_checkpoint(tiny_model(), run_dir / "checkpoints" / "checkpoint-3")
    with initialize_config_dir(version_base="1.3", config_dir=str(repo / "configs")):
        data = compose(
            "generate",
            overrides=[
                "checkpoint=x",
                "data=synthetic",
                f"data.root={dataset.cache_dir.parent}",
                f"data.preprocessing.target_size=[{','.join(map(str, VOLUME))}]",
            ],
        ).data
    OmegaConf.save({"seed": 0, "data": OmegaConf.to_container(data, resolve=True)}, run_dir / "config.yaml")

    def generate(checkpoint_dir: Path) -> subprocess.CompletedProcess:
        command = [
            sys.executable,
            str(repo / "scripts" / "generate.py"),
            f"checkpoint={checkpoint_dir}",
            "generation.max_new_tokens=2",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)

    result = generate(checkpoint)
    assert result.returncode == 0, result.stderr
    written = checkpoint / "predictions_valid.csv"
    assert f"predictions: {written}" in result.stdout
    assert f"python scripts/evaluate.py predictions={written}" in result.stdout
    assert [row["AccNum"] for row in _rows(written)] == [entry["study_id"] for entry in dataset.entries]
    assert json.loads((checkpoint / "predictions_valid.csv.settings.json").read_text())["data"] == "synthetic"

    alone = save_checkpoint(tiny_model(), tmp_path / "alone" / "checkpoint")
    result = generate(alone)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"no data=... given and {tmp_path / 'config.yaml'}" in result.stderr and "data=synthetic" in result.stderr


def test_a_csv_begun_by_another_generation_is_refused_or_begun_afresh(dataset, tmp_path):
    model, out = tiny_model(), tmp_path / "predictions.csv"
    generate_predictions(model, dataset, out, settings={"max_new_tokens": 4}, metadata={"weights": "a"})
    refused = {
        "settings changed": dict(settings={"max_new_tokens": 8}, metadata={"weights": "a"}),
        "weights changed": dict(settings={"max_new_tokens": 4}, metadata={"weights": "b"}),
        "split changed": dict(settings={"max_new_tokens": 4}, metadata={"weights": "a", "split": "test"}),
    }
    for reason, call in refused.items():
        with pytest.raises(ValueError, match=rf"predictions.csv was begun by another generation \({reason}"):
            generate_predictions(model, dataset, out, **call)
    # where the checkpoint lies is not what made the predictions: the same weights continue the CSV
    generate_predictions(
        model, dataset, out, settings={"max_new_tokens": 4}, metadata={"weights": "a", "checkpoint": "x"}
    )

    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:3]), encoding="utf-8")  # two studies of five, from weights "a"
    generate_predictions(
        model, dataset, out, settings={"max_new_tokens": 4}, metadata={"weights": "b"}, restart_if_changed=True
    )
    sidecar = json.loads(out.with_name(out.name + ".settings.json").read_text(encoding="utf-8"))
    assert sidecar["weights"] == "b" and sidecar["resumed_with"] == 0 and len(_rows(out)) == 5


def test_a_csv_without_its_settings_file_is_not_continued(dataset, tmp_path):
    model, out = tiny_model(), tmp_path / "predictions.csv"
    generate_predictions(model, dataset, out, settings={"max_new_tokens": 4})
    out.with_name(out.name + ".settings.json").unlink()
    with pytest.raises(ValueError, match="no predictions.csv.settings.json says how it was made"):
        generate_predictions(model, dataset, out, settings={"max_new_tokens": 4})
    out.with_name(out.name + ".settings.json").write_text('{"settings": {', encoding="utf-8")  # cut off
    with pytest.raises(ValueError, match="settings.json is unreadable"):
        generate_predictions(model, dataset, out, settings={"max_new_tokens": 4})


def test_a_model_without_rra_is_given_references_without_region_names(dataset, tmp_path):
    out = tmp_path / "predictions.csv"
    generate_predictions(tiny_model(rra=False), dataset, out, settings={"max_new_tokens": 4})
    first = dataset[0]
    reference = _rows(out)[0]["GT_combined_report"]
    assert reference == " ".join(report.strip() for report in first["region_reports"])
    assert not reference.startswith("The region")
