"""CI runs exactly the README's two commands: nothing a new user would not do."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    result = subprocess.run(["bash", ".ci/run", "--print"], cwd=REPO, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_ci_runs_the_readme_commands_and_nothing_else():
    install_and_demo, tests = readme_commands()
    assert install_and_demo.startswith('pip install "torch==2.13.0" && pip install -e ')
    assert install_and_demo.endswith("python scripts/train.py")
    assert tests == "python -m pytest tests -q"
    ci_script = (REPO / ".ci" / "run").read_text()
    for step_a_user_would_not_take in ("apt-get", "pip install", "nltk", "export ", "python -m reg2rg"):
        assert step_a_user_would_not_take not in ci_script


def test_the_readme_block_ci_reads_is_the_first_one():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("  #")[0].strip() for line in first_block.splitlines()] == readme_commands()


def test_every_shipped_resource_is_package_data():
    package = REPO / "src" / "reg2rg"
    pyproject = (REPO / "pyproject.toml").read_text()
    resources = [path.relative_to(package).as_posix() for path in (package / "evaluation" / "resources").rglob("*")]
    files = [name for name in resources if (package / name).is_file()]
    assert files and all(f'"{name}"' in pyproject for name in files)
