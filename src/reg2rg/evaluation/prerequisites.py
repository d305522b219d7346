"""What an evaluation needs, checked before any training or generation: one error that lists every problem.

    from reg2rg.evaluation.prerequisites import check_evaluation_prerequisites
    check_evaluation_prerequisites(["reg2rg", "coco"], ce_config=cfg.ce, output_dir="outputs/eval")

- METEOR's NLTK data (protocol "reg2rg" and the region tables): ``nltk_data.require_nltk_data``.
- Java, when protocol "coco" is asked for (its METEOR 1.5 is a jar): ``java -version`` must work.
- The RadBERT files, when the CE labeler is RadBERT (``ce=radbert``): ``model_dir`` with its config and
  tokenizer files, ``classifier_path`` a non-empty file.
- The output folder: a file can be created and removed in it (or in the folder it will be made in).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RADBERT_TARGET = "reg2rg.evaluation.radbert.RadBertLabeler"  # configs/ce/radbert.yaml
RADBERT_CONFIG = "config.json"
RADBERT_TOKENIZER = (("tokenizer.json",), ("vocab.json", "merges.txt"))  # either is enough for AutoTokenizer
JAVA_FIX = "install Java 17 (apt-get install default-jre-headless)"
JAVA_TIMEOUT_S = 60
UNSET = "???"  # OmegaConf's missing value


class PrerequisitesMissing(RuntimeError):
    """What a run needs and does not have; ``problems`` holds one line per problem, each with its fix."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        listed = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) to fix before starting:\n{listed}")


def check_evaluation_prerequisites(
    protocols: Sequence[str],
    ce_config: Mapping[str, Any] | None = None,
    output_dir: str | Path | None = None,
    regions: bool = True,
    protocols_setting: str = "protocols",
    output_setting: str = "output_dir",
) -> None:
    """Raise ``PrerequisitesMissing`` listing every problem of ``evaluation_problems``; return when there is none."""
    problems = evaluation_problems(protocols, ce_config, output_dir, regions, protocols_setting, output_setting)
    if problems:
        raise PrerequisitesMissing(problems)


def evaluation_problems(
    protocols: Sequence[str],
    ce_config: Mapping[str, Any] | None = None,
    output_dir: str | Path | None = None,
    regions: bool = True,
    protocols_setting: str = "protocols",
    output_setting: str = "output_dir",
) -> list[str]:
    """The problems an evaluation would meet, each with its fix; [] when it can run.

    Args:
        protocols: the NLG protocols asked for ("reg2rg", "coco").
        ce_config: the ``ce`` config (``{"labeler": {"_target_": ..., ...}}``); None: the rule labeler.
        output_dir: where results go; None: not checked.
        regions: whether the region tables (METEOR included) are computed.
        protocols_setting, output_setting: the config keys the fixes name (training's ``evaluation.protocols``).
    """
    from reg2rg.evaluation.pipeline import PROTOCOLS

    problems = []
    unknown = [protocol for protocol in protocols if protocol not in PROTOCOLS]
    if unknown:
        problems.append(
            f"unknown protocol(s) {unknown}: choose from {list(PROTOCOLS)}, "
            f"e.g. {protocols_setting}=[{','.join(PROTOCOLS)}]"
        )
    if "reg2rg" in protocols or regions:
        problems += nltk_problems()
    if "coco" in protocols:
        problems += java_problems(
            protocols_setting, [protocol for protocol in PROTOCOLS if protocol in protocols and protocol != "coco"]
        )
    labeler = _plain(ce_config or {}).get("labeler") or {}
    if labeler.get("_target_") == RADBERT_TARGET:
        problems += radbert_problems(labeler)
    if output_dir is not None:
        problems += output_folder_problems(Path(output_dir), output_setting)
    return problems


def _plain(config: Mapping[str, Any]) -> dict:
    """An OmegaConf node as a dict, its unset values (``???``) kept as that string; a dict as it is."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True, throw_on_missing=False)
    return dict(config)


def nltk_problems() -> list[str]:
    """METEOR's WordNet and Punkt data (protocol "reg2rg" and the region tables)."""
    from reg2rg.evaluation.nltk_data import NLTKDataMissing, require_nltk_data

    try:
        require_nltk_data()
    except NLTKDataMissing as error:
        return [f"METEOR's NLTK data: {error}"]
    return []


def java_problems(protocols_setting: str, other_protocols: Sequence[str]) -> list[str]:
    """``java -version`` must work for protocol "coco" (METEOR 1.5 is a Java jar)."""
    drop = f"or drop the coco protocol: {protocols_setting}=[{','.join(other_protocols)}]"
    if shutil.which("java") is None:
        return [f"protocol coco runs METEOR 1.5 in Java, and java is not on PATH: {JAVA_FIX} {drop}"]
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [f"protocol coco runs METEOR 1.5 in Java, and `java -version` failed ({error}): {JAVA_FIX} {drop}"]
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return [
            f"protocol coco runs METEOR 1.5 in Java, and `java -version` exited with {done.returncode}"
            f"{f' ({said[-1]})' if said else ''}: {JAVA_FIX} {drop}"
        ]
    return []


def radbert_problems(labeler: Mapping[str, Any]) -> list[str]:
    """``ce=radbert``: the RadBERT folder (config and tokenizer) and the classifier's state dict."""
    problems = []
    model_dir, classifier = labeler.get("model_dir"), labeler.get("classifier_path")
    folder_fix = "ce.labeler.model_dir=/models/RadBERT-RoBERTa-4m (a local copy of zzxslp/RadBERT-RoBERTa-4m)"
    if model_dir in (None, UNSET):
        problems.append(f"ce=radbert needs RadBERT's config and tokenizer folder: add {folder_fix}")
    elif not Path(model_dir).is_dir():
        problems.append(f"ce.labeler.model_dir {model_dir} is not a folder: give {folder_fix}")
    else:
        problems += _radbert_folder_problems(Path(model_dir), folder_fix)
    classifier_fix = (
        "ce.labeler.classifier_path=/models/RadBertClassifier.pth (CT-CLIP's fine-tuned RadBERT classifier)"
    )
    if classifier in (None, UNSET):
        problems.append(f"ce=radbert needs the classifier's weights: add {classifier_fix}")
    elif not Path(classifier).is_file():
        problems.append(f"ce.labeler.classifier_path {classifier} is not a file: give {classifier_fix}")
    elif Path(classifier).stat().st_size == 0:
        problems.append(f"ce.labeler.classifier_path {classifier} is empty (a cut-off copy?): copy it again")
    return problems


def _radbert_folder_problems(folder: Path, fix: str) -> list[str]:
    config = folder / RADBERT_CONFIG
    problems = []
    if not config.is_file():
        problems.append(f"{folder} has no {RADBERT_CONFIG} (RadBERT's model config): give {fix}")
    else:
        try:
            json.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            problems.append(f"{config} cannot be read as JSON ({error}): copy it again from zzxslp/RadBERT-RoBERTa-4m")
    if not any(all((folder / name).is_file() for name in names) for names in RADBERT_TOKENIZER):
        wanted = " or ".join(" + ".join(names) for names in RADBERT_TOKENIZER)
        problems.append(f"{folder} has no tokenizer files ({wanted}): give {fix}")
    return problems


def output_folder_problems(folder: Path, output_setting: str = "output_dir") -> list[str]:
    """A file can be created and removed in ``folder``, or, when it does not exist yet, in the nearest folder
    above it (where it will be made); nothing is left behind."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    fix = f"choose a writable folder ({output_setting}=...)"
    if not existing.is_dir():
        return [f"output folder {folder} cannot be made: {existing} is a file, not a folder; {fix}"]
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".reg2rg-write-test-"):
            pass
    except OSError as error:
        where = "" if existing == folder.absolute() else f" (it would be made in {existing})"
        return [f"output folder {folder}{where} is not writable ({error.strerror or error}): make it writable or {fix}"]
    return []
