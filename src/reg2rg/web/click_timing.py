"""How long lesion mode takes to answer a click, measured through the page's own API (FastAPI's TestClient).

    python -m reg2rg.web.click_timing --isrg-checkpoint <ISRG-CT checkpoint> --data data/synthetic/cache

It opens the first study, clicks ``--clicks`` times near the centre of its best axial slice (a new lesion
every ``--per-lesion`` clicks: the first click of a lesion also encodes its crop), and prints the median and
the largest time per click, as the browser waits for it (request to answer, JSON included), with the
machine's load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def time_clicks(isrg_checkpoint: Path, data: Path, clicks: int, per_lesion: int) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from reg2rg.web.app import ServeSettings, create_app
    from reg2rg.web.studies import list_studies

    with tempfile.TemporaryDirectory() as work:
        settings = ServeSettings(data=data, data_roots=[data], work_dir=Path(work), isrg_checkpoint=isrg_checkpoint)
        client = TestClient(create_app(settings))
        first = list_studies(data.resolve())[0]
        study = client.post("/api/open", json={"path": str(data), **first}).json()
        axial = study["views"]["axial"]
        key, index = study["key"], study["slices"]["axial"]
        client.post(f"/api/study/{key}/lesion/click", json={"view": "axial", "index": index, "row": 0, "col": 0})
        client.post(f"/api/study/{key}/lesion/reset")  # the model is loaded on the first click: not timed
        seconds = {"first": [], "later": []}
        for n in range(clicks):
            if n % per_lesion == 0:
                client.post(f"/api/study/{key}/lesion/reset")
            place = {"row": axial["rows"] // 2 + n % 3, "col": axial["cols"] // 2 + n % 2}
            start = time.perf_counter()
            response = client.post(
                f"/api/study/{key}/lesion/click", json={"view": "axial", "index": index, **place, "positive": True}
            )
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            seconds["first" if n % per_lesion == 0 else "later"].append(elapsed)
    every = seconds["first"] + seconds["later"]
    return {
        "load_average_1min": os.getloadavg()[0],  # other processes on the machine slow the clicks down
        "clicks": len(every),
        "median_s": statistics.median(every),
        "max_s": max(every),
        "first_of_lesion_median_s": statistics.median(seconds["first"]),
        "later_median_s": statistics.median(seconds["later"]) if seconds["later"] else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isrg-checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/cache"), help="cache or study folder")
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--per-lesion", type=int, default=3, help="clicks on one lesion before a reset")
    args = parser.parse_args()
    result = time_clicks(args.isrg_checkpoint, args.data, args.clicks, args.per_lesion)
    print(
        ", ".join(
            f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}" for key, value in result.items()
        )
    )


if __name__ == "__main__":
    main()
