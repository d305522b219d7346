"""Serve the local web page (configs/serve.yaml, docs/web.md) on http://127.0.0.1:8000.

python scripts/serve.py                                   # the demo's cache and checkpoints, if present
python scripts/serve.py checkpoint=<checkpoint> isrg_checkpoint=<ISRG-CT checkpoint> data=<cache or study folder>
"""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../configs", config_name="serve")
def main(cfg: DictConfig) -> None:
    from reg2rg.web.launch import serve, settings_from_config

    try:
        settings, missing = settings_from_config(cfg)
    except FileNotFoundError as error:
        sys.exit(f"serve.py: {error}")
    for line in missing:
        print(f"serve.py: {line}", file=sys.stderr)
    if settings.data is None and settings.checkpoint is None and settings.isrg_checkpoint is None:
        sys.exit("serve.py: nothing to serve")
    print(f"serve.py: data {settings.data}, reports {settings.checkpoint}, lesions {settings.isrg_checkpoint}")
    print(f"serve.py: open http://{cfg.host}:{cfg.port} in a browser")
    serve(settings, cfg.host, cfg.port)


if __name__ == "__main__":
    main()
