"""Serve the local web page (configs/serve.yaml, docs/web.md) on http://127.0.0.1:8000.

    python scripts/serve.py                                   # the demo's cache and checkpoints, if present
    python scripts/serve.py checkpoint=<checkpoint> isrg_checkpoint=<ISRG-CT checkpoint> data=<cache or study folder>

Settings are ``key=value`` overrides of configs/serve.yaml (read with OmegaConf, not Hydra: ``data=`` names a
folder here, not a config group).
"""

import sys
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "serve.yaml"


def main() -> None:
    from reg2rg.web.launch import serve, settings_from_config

    cfg = OmegaConf.load(CONFIG)
    OmegaConf.set_struct(cfg, True)  # a misspelt key is an error, not a silent new setting
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(sys.argv[1:]))
        settings, missing = settings_from_config(cfg)
    except (OmegaConfBaseException, FileNotFoundError, ValueError) as error:
        sys.exit(f"serve.py: {str(error).splitlines()[0]} (settings: {CONFIG})")
    for line in missing:
        print(f"serve.py: {line}", file=sys.stderr)
    if settings.data is None and settings.checkpoint is None and settings.isrg_checkpoint is None:
        sys.exit("serve.py: nothing to serve")
    if cfg.torch_threads:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    print(f"serve.py: data {settings.data}, reports {settings.checkpoint}, lesions {settings.isrg_checkpoint}")
    print(f"serve.py: open http://{cfg.host}:{cfg.port} in a browser")
    serve(settings, cfg.host, cfg.port)


if __name__ == "__main__":
    main()
