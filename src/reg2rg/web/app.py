"""The page's HTTP JSON API (FastAPI) and its static files.

    app = create_app(ServeSettings(data=Path("data/synthetic/cache"), data_roots=[Path("data")], ...))

Errors answer ``{"detail": message}``: 400 bad input (the message names the file and the problem), 403 a path
outside the data roots, 404 an unknown study or job, 409 a second generation, 413 an upload over the cap.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from reg2rg.data.errors import MAX_VOXELS, StudyError
from reg2rg.visualize.palette import PALETTE, region_colour
from reg2rg.web.jobs import Busy, ReportGenerator
from reg2rg.web.lesion import LesionSession, SessionFactory
from reg2rg.web.slices import WINDOWS, best_slices, render_slice, view_geometry, voxel_at
from reg2rg.web.studies import (
    MASK_FOLDER,
    MEDREGION,
    NIFTI_SUFFIXES,
    REG2RG,
    DataRoots,
    OpenedStudy,
    PathRefused,
    is_cache,
    is_medregion_folder,
    list_studies,
    medregion_studies,
    open_cached,
    open_medregion_folder,
    open_nifti_folder,
)

STATIC = Path(__file__).parent / "static"
UPLOADS = "uploads"


@dataclass
class ServeSettings:
    """What the server serves (``configs/serve.yaml``)."""

    data: Path | None  # the cache or study folder the page opens first
    data_roots: list[Path]  # studies are read from inside these folders only (the work folder is added)
    work_dir: Path  # uploads and preprocessed NIfTI studies
    checkpoint: Path | None = None  # a report generation checkpoint (Reg2RG or MedRegion-CT)
    isrg_checkpoint: Path | None = None  # an ISRG-CT checkpoint for lesion mode
    max_upload_mb: float = 512.0
    max_voxels: int = MAX_VOXELS
    device: str = "cpu"
    max_new_tokens: int = 512
    max_open_studies: int = 8
    roots: DataRoots = field(init=False)

    def __post_init__(self):
        self.roots = DataRoots([*self.data_roots, self.work_dir])


class OpenRequest(BaseModel):
    path: str
    split: str
    study_id: str


class ClickRequest(BaseModel):
    view: str
    index: int
    row: int
    col: int
    positive: bool = True


def _isrg_sessions(checkpoint: Path) -> SessionFactory:
    """A factory of ISRG-CT sessions on ``checkpoint``'s model, loaded on the first click."""
    loaded: list[Any] = []

    def open_session(volume: np.ndarray, affine: np.ndarray):
        from reg2rg.isrg.session import InteractiveSession, load_isrg_model

        if not loaded:
            loaded.append(load_isrg_model(checkpoint))
        return InteractiveSession(loaded[0], volume, affine)

    return open_session


def create_app(settings: ServeSettings, lesion_sessions: SessionFactory | None = None) -> FastAPI:
    """The app. ``lesion_sessions`` opens lesion sessions; by default ISRG-CT's on ``settings.isrg_checkpoint``."""
    if lesion_sessions is None and settings.isrg_checkpoint is not None:
        lesion_sessions = _isrg_sessions(settings.isrg_checkpoint)
    generator = (
        ReportGenerator(settings.checkpoint, settings.device, settings.max_new_tokens) if settings.checkpoint else None
    )
    studies: OrderedDict[str, OpenedStudy] = OrderedDict()  # the open studies, least recently used first
    lesions: dict[str, LesionSession] = {}
    store = threading.Lock()  # requests run in a thread pool: one of them changes the two at a time
    app = FastAPI(title="reg2rg", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(PathRefused)
    def refused(request: Request, error: PathRefused) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=403)

    @app.exception_handler(StudyError)
    @app.exception_handler(ValueError)
    @app.exception_handler(FileNotFoundError)
    def bad_input(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(Busy)
    def busy(request: Request, error: Busy) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    def study(key: str) -> OpenedStudy:
        with store:
            if key not in studies:
                raise HTTPException(404, f"no open study {key!r}: open it again")
            studies.move_to_end(key)
            return studies[key]

    def lesion(key: str) -> LesionSession:
        if lesion_sessions is None:
            raise HTTPException(400, "lesion mode needs an ISRG-CT model: start the server with isrg_checkpoint=...")
        opened = study(key)
        with store:
            if key not in lesions:
                lesions[key] = LesionSession(opened, lesion_sessions)
            return lesions[key]

    def register(opened: OpenedStudy, replacing: str | None = None) -> dict[str, Any]:
        key = secrets.token_urlsafe(8)
        with store:
            if replacing in studies:  # the same study, opened again with more masks
                lesions.pop(replacing, None)
                studies.pop(replacing).close()
            studies[key] = opened
            while len(studies) > settings.max_open_studies:
                old, closed = studies.popitem(last=False)
                lesions.pop(old, None)
                closed.close()
        return describe(key, opened)

    def describe(key: str, opened: OpenedStudy) -> dict[str, Any]:
        ras = opened.ras
        return {
            "key": key,
            "study_id": opened.study_id,
            "views": {view: view_geometry(ras, view) for view in ("axial", "coronal", "sagittal")},
            "slices": best_slices(ras, opened.regions),
            "regions": [
                {"name": region, "colour": region_colour(region), "centre": opened.centre(region)}
                for region in opened.regions
            ],
            "reference": opened.reference,
            "can_generate": generator is not None and opened.sample is not None and opened.family == generator.family,
            "uploaded": is_upload(opened),
        }

    def is_upload(opened: OpenedStudy) -> bool:
        return opened.source.is_relative_to((settings.work_dir / UPLOADS).resolve())

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {
            "data": str(settings.data) if settings.data else "",
            "windows": list(WINDOWS),
            "checkpoint": settings.checkpoint.name if settings.checkpoint else None,
            "lesion_mode": lesion_sessions is not None,
            "regions": list(PALETTE),
            "max_upload_mb": settings.max_upload_mb,
        }

    @app.get("/api/studies")
    def studies_in(path: str) -> dict[str, Any]:
        return {"path": path, "studies": list_studies(settings.roots.resolve(path))}

    @app.post("/api/open")
    def open_study(request: OpenRequest) -> dict[str, Any]:
        folder = settings.roots.resolve(request.path)
        if not folder.is_dir():
            raise ValueError(f"{request.path} is a file: open the cache folder or the study folder that holds it")
        encoder = generator.encoder if generator is not None else None
        reg2rg_checkpoint = settings.checkpoint if encoder is None else None  # the Reg2RG model's data settings
        if is_cache(folder):
            return register(open_cached(folder, request.split, request.study_id, reg2rg_checkpoint))
        if is_medregion_folder(folder):
            return register(open_medregion_folder(folder, encoder))
        found = [study for study in medregion_studies(folder) if study.name == request.study_id]
        if found:
            return register(open_medregion_folder(found[0], encoder))
        return register(open_nifti_folder(folder, settings.work_dir, reg2rg_checkpoint, settings.max_voxels))

    @app.post("/api/upload")
    async def upload(request: Request, name: str) -> dict[str, Any]:
        """A NIfTI volume as the request body (``name``: its file name); opened as a study without masks."""
        folder = (settings.work_dir / UPLOADS).resolve() / secrets.token_urlsafe(8)
        await _receive_nifti(request, name, folder / _nifti_name(_safe_stem(name), name), settings.max_upload_mb)
        return register(_open_upload(folder, name, settings))

    @app.post("/api/study/{key}/mask")
    async def upload_mask(key: str, request: Request, region: str, name: str) -> dict[str, Any]:
        """A region mask for an uploaded volume; the study is opened again with it (and so can be reported on)."""
        opened = study(key)
        if not is_upload(opened):
            raise HTTPException(400, "masks can be added to uploaded volumes only")
        if region not in PALETTE:
            raise HTTPException(400, f"unknown region {region!r}: one of {list(PALETTE)}")
        path = opened.source / MASK_FOLDER / _nifti_name(region, name)
        await _receive_nifti(request, name, path, settings.max_upload_mb)
        try:
            reopened = _open_upload(opened.source, name, settings)
        except BaseException:
            path.unlink()
            raise
        return register(reopened, replacing=key)

    @app.get("/api/study/{key}/slice/{view}/{index}.png")
    def slice_png(
        key: str, view: str, index: int, window: str = "lung", regions: bool = True, highlight: str | None = None
    ) -> Response:
        opened = study(key)
        session = lesions.get(key)
        png = render_slice(
            opened.ras,
            view,
            index,
            window,
            opened.regions if regions else (),
            highlight,
            lesion=session.mask if session else None,
            points=session.points if session else (),
        )
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/study/{key}/at")
    def at(key: str, view: str, index: int, row: int, col: int) -> dict[str, Any]:
        opened = study(key)
        voxel = voxel_at(opened.ras.shape, view, index, row, col)
        return {"voxel": list(voxel), "hu": int(opened.ras.volume[voxel]), "regions": opened.regions_at(voxel)}

    @app.post("/api/study/{key}/generate")
    def generate(key: str) -> dict[str, Any]:
        opened = study(key)
        if generator is None:
            raise HTTPException(
                400, "no report model: start the server with checkpoint=<a Reg2RG or MedRegion-CT checkpoint>"
            )
        if opened.family != generator.family:
            names = {REG2RG: "Reg2RG", MEDREGION: "MedRegion-CT"}
            raise HTTPException(
                400,
                f"{opened.study_id} is laid out for {names[opened.family]}, but the report model is "
                f"{names[generator.family]}: open one of its studies",
            )
        if opened.sample is None:
            raise HTTPException(400, f"{opened.study_id} has no region masks: reports are generated for regions")
        return generator.start(key, opened.sample).status()

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        if generator is None or job_id not in generator.jobs:
            raise HTTPException(404, f"no generation job {job_id!r}")
        return generator.jobs[job_id].status()

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        if generator is None or job_id not in generator.jobs:
            raise HTTPException(404, f"no generation job {job_id!r}")
        return generator.cancel(job_id).status()

    @app.post("/api/study/{key}/lesion/click")
    def click(key: str, request: ClickRequest) -> dict[str, Any]:
        session = lesion(key)
        voxel = voxel_at(session.study.ras.shape, request.view, request.index, request.row, request.col)
        return session.click(voxel, request.positive)

    @app.post("/api/study/{key}/lesion/undo")
    def undo(key: str) -> dict[str, Any]:
        return lesion(key).undo()

    @app.post("/api/study/{key}/lesion/reset")
    def reset(key: str) -> dict[str, Any]:
        return lesion(key).reset()

    @app.get("/api/study/{key}/lesion/mask.nii.gz")
    def lesion_mask(key: str) -> Response:
        session = lesion(key)
        return _download(session.mask_nifti(), f"{session.study.study_id}_lesion.nii.gz", "application/gzip")

    @app.get("/api/study/{key}/lesion/report.json")
    def lesion_report_json(key: str) -> Response:
        session = lesion(key)
        return _download(session.report_json(), f"{session.study.study_id}_lesion.json", "application/json")

    @app.get("/api/study/{key}/lesion/report.txt")
    def lesion_report_text(key: str) -> Response:
        session = lesion(key)
        return _download(session.report_text(), f"{session.study.study_id}_lesion.txt", "text/plain; charset=utf-8")

    return app


def _download(data: bytes, filename: str, media_type: str) -> Response:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)  # a study id from a file name may hold quotes or spaces
    return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{safe}"'})


def _safe_stem(name: str) -> str:
    """An uploaded file's name without its suffixes, as a plain file name (other characters as '_')."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", Path(name).name.split(".")[0]) or "volume"


def _nifti_name(stem: str, uploaded: str) -> str:
    """``stem`` with the uploaded file's NIfTI suffix, or ValueError for a name that is not NIfTI."""
    suffix = next((s for s in sorted(NIFTI_SUFFIXES, key=len, reverse=True) if uploaded.lower().endswith(s)), None)
    if suffix is None:
        raise ValueError(f"{uploaded} is not a NIfTI file: upload a .nii or .nii.gz volume")
    return stem + suffix


async def _receive_nifti(request: Request, name: str, path: Path, max_mb: float) -> None:
    """Write the request body to ``path`` (never more than ``max_mb``), checking that it starts as NIfTI does."""
    from reg2rg.files import atomic_path

    limit = int(max_mb * 2**20)
    too_large = HTTPException(413, f"{name} is larger than the upload limit of {max_mb:g} MB (max_upload_mb=...)")
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:
        raise too_large
    size = 0
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            handle.write(chunk)
        handle.close()
        _check_nifti_header(temporary, name)


def _check_nifti_header(path: Path, name: str) -> None:
    """ValueError unless the file opens with a NIfTI-1 or NIfTI-2 header (gzipped or not)."""
    import gzip

    with open(path, "rb") as handle:
        head = handle.read(4)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(4)
        except (OSError, EOFError) as error:
            raise ValueError(f"{name} is not a readable gzip file ({error}): upload a .nii or .nii.gz volume") from None
    sizes = {int.from_bytes(head, "little"), int.from_bytes(head, "big")} if len(head) == 4 else set()
    if not sizes & {348, 540}:
        raise ValueError(f"{name} is not a NIfTI file (no NIfTI header): upload a .nii or .nii.gz volume")


def _open_upload(folder: Path, name: str, settings: ServeSettings) -> OpenedStudy:
    """An upload folder as a study; a bad file's message names the uploaded file, not the server's copy."""
    try:
        return open_nifti_folder(folder, settings.work_dir, settings.checkpoint, settings.max_voxels)
    except StudyError as error:
        raise ValueError(f"{name}: {error.problem}") from None
