"""The REST routes (see the package docstring for each route and parameter).

Every handler is a Jupyter ``APIHandler``: ``@web.authenticated`` (no token or login cookie:
403), ``@authorized`` on the ``contents`` resource (an authorizer that denies reading files
denies the histories too), and the XSRF / Referer check Jupyter's own file handler makes on
GET, so another site cannot embed these URLs in a logged-in browser. SQLite and file work runs
on a small thread pool, never on the server's event loop; originals are streamed in chunks
read on that pool.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from cometnb._core.errors import CometError
from cometnb._core.generations import GeneratedImage
from cometnb._server import media
from cometnb._server.catalog import Catalog, FoundHistory
from cometnb._server.payloads import (
    facets_json,
    history_json,
    record_detail,
    record_summary,
    revision_json,
)
from cometnb._storage.browse import Browser, RecordFilter
from cometnb._storage.records import Record
from cometnb._storage.spend import as_timestamp

__all__ = ["MAX_LIMIT", "ROUTES", "Services"]

T = TypeVar("T")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
STATUSES = ("ok", "error", "cancelled")
PX_RANGE = (16, 2048)
_JSON_CACHE = "no-cache"  # revalidate each time (tornado's ETag answers 304 when unchanged)
_IMAGE_CACHE = "private, max-age=86400"  # a record's images never change


class Services:
    """What the handlers share: the catalog, the preview cache and the thread pool."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.previews = media.PreviewCache()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cometnb-server")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.catalog.close()


class _Handler(APIHandler):
    auth_resource = "contents"

    @property
    def services(self) -> Services:
        found: Services = self.settings["cometnb_services"]
        return found

    def guard(self) -> None:
        """Jupyter's file handler check for GETs: XSRF token, or a same-site Referer."""
        self.check_xsrf_cookie()

    # --- parameters ------------------------------------------------------------------------

    def text_arg(self, name: str) -> str | None:
        value = self.get_argument(name, None)
        return value.strip() or None if value is not None else None

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise web.HTTPError(400, f"{name} must be a whole number from {low} to {high}")
        return value

    def px_arg(self) -> int | None:
        """``px``: the longest side of a preview (``None``: the stored preview's own)."""
        if self.get_argument("px", None) is None:
            return None
        return self.int_arg("px", 0, *PX_RANGE)

    def choice_arg(self, name: str, allowed: tuple[str, ...]) -> str | None:
        value = self.text_arg(name)
        if value is not None and value not in allowed:
            raise web.HTTPError(400, f"{name} must be one of {', '.join(allowed)}")
        return value

    def time_arg(self, name: str) -> float | None:
        value = self.text_arg(name)
        if value is None:
            return None
        try:
            moment = as_timestamp(float(value) if _is_number(value) else value)
        except (TypeError, ValueError, OverflowError):
            moment = None
        if moment is None or not math.isfinite(moment):
            raise web.HTTPError(
                400, f"{name} must be an ISO date or time (2026-12-01T09:30) or a Unix timestamp"
            )
        return moment

    def usd_arg(self, name: str) -> float | None:
        value = self.text_arg(name)
        if value is None:
            return None
        usd = float(value) if _is_number(value) else math.nan
        if not math.isfinite(usd) or usd < 0:
            raise web.HTTPError(400, f"{name} must be a non-negative number of US dollars")
        return usd

    async def history(self) -> tuple[FoundHistory, Browser]:
        """The history ``history=`` names: only an id ``cometnb/api/histories`` lists."""
        hid = self.get_argument("history", None)
        if not hid:
            raise web.HTTPError(400, "history is required: an id from cometnb/api/histories")
        if not (len(hid) == 16 and all(c in "0123456789abcdef" for c in hid)):
            raise web.HTTPError(400, "history must be an id from cometnb/api/histories")
        catalog = self.services.catalog
        found = await self.services.run(catalog.find, hid)
        if found is None:
            raise web.HTTPError(404, "no such history (ids are listed by cometnb/api/histories)")
        return found, catalog.browser(found)

    async def record(self, browser: Browser, record_id: str) -> Record:
        rec = await self.read(browser.get, record_id)
        if rec is None:
            raise web.HTTPError(404, "no such record in this history")
        return rec

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a history read on the pool; an unreadable index is a 503 with its message."""
        try:
            return await self.services.run(fn, *args)
        except CometError as exc:
            raise web.HTTPError(503, str(exc)) from None

    def send_json(self, payload: Any) -> None:
        self.set_header("Cache-Control", _JSON_CACHE)
        self.finish(json.dumps(payload, ensure_ascii=False, default=str))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class HistoriesHandler(_Handler):
    """``GET cometnb/api/histories[?refresh=1]``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.guard()
        refresh = self.get_argument("refresh", "") not in ("", "0")
        catalog = self.services.catalog
        found = await self.services.run(lambda: catalog.histories(refresh=refresh))
        entries = []
        for item in found:
            try:
                rev = await self.services.run(catalog.browser(item).revision)
            except CometError as exc:
                entries.append({"id": item.id, "path": item.path, "error": str(exc)})
                continue
            entries.append(history_json(item, rev))
        self.send_json({"histories": entries, "truncated": catalog.truncated})


class RecordsHandler(_Handler):
    """``GET cometnb/api/records?history=ID&q=&model=&tag=&status=&since=&until=
    &min_cost=&max_cost=&offset=0&limit=50``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.guard()
        filt = RecordFilter(
            text=self.text_arg("q"),
            model=self.text_arg("model"),
            tag=self.text_arg("tag"),
            status=self.choice_arg("status", STATUSES),
            since=self.time_arg("since"),
            until=self.time_arg("until"),
            min_cost=self.usd_arg("min_cost"),
            max_cost=self.usd_arg("max_cost"),
        )
        offset = self.int_arg("offset", 0, 0, 10**9)
        limit = self.int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        _found, browser = await self.history()

        def answer() -> dict[str, Any]:
            page = browser.page(filt, offset, limit)
            rows = [record_summary(r) for r in page.records]
            rev = browser.revision()
            return {
                "total": page.total,
                "offset": offset,
                "limit": limit,
                "revision": rev.token,
                "newest": rev.newest,
                "records": rows,
            }

        self.send_json(await self.read(answer))


class FacetsHandler(_Handler):
    """``GET cometnb/api/facets?history=ID``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.guard()
        _found, browser = await self.history()
        facets = await self.read(browser.facets)
        rev = await self.read(browser.revision)
        self.send_json({**facets_json(facets), **revision_json(rev)})


class RecordHandler(_Handler):
    """``GET cometnb/api/records/ID?history=ID``."""

    @web.authenticated
    @authorized
    async def get(self, record_id: str) -> None:
        self.guard()
        _found, browser = await self.history()
        rec = await self.record(browser, record_id)

        def answer() -> dict[str, Any]:
            return record_detail(rec, browser.lineage(rec), browser.children(rec))

        self.send_json(await self.read(answer))


class _ImageHandler(_Handler):
    async def image(self, record_id: str, k: str) -> tuple[Path, Record, int, GeneratedImage]:
        """The history folder, the record, and its image ``k`` (which has a file)."""
        found, browser = await self.history()
        rec = await self.record(browser, record_id)
        index = int(k)
        if index >= len(rec.images) or rec.images[index].path is None:
            raise web.HTTPError(404, f"record {record_id} has no image {index}")
        return found.folder, rec, index, rec.images[index]

    def not_modified(self, tag: str) -> bool:
        self.set_header("Etag", tag)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return True
        return False

    async def stream(self, root: Path, path: Path, content_type: str) -> None:
        try:
            handle = await self.services.run(media.open_inside, root, path)
        except (OSError, ValueError):
            raise web.HTTPError(404, "the image file is not in the history folder") from None
        try:
            self.set_header("Content-Type", content_type)
            self.set_header("Content-Length", os.fstat(handle.fileno()).st_size)
            while chunk := await self.services.run(handle.read, media.CHUNK):
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return  # the browser went away (a thumbnail scrolled off): nothing to finish
        finally:
            handle.close()
        self.finish(set_content_type=content_type)

    async def head_type(self, root: Path, path: Path) -> bytes:
        def head() -> bytes:
            with media.open_inside(root, path) as f:
                return f.read(64)

        try:
            return await self.services.run(head)
        except (OSError, ValueError):
            raise web.HTTPError(404, "the image file is not in the history folder") from None

    def attachment(self, filename: str) -> None:
        self.set_header("Content-Security-Policy", media.INERT_CSP)
        self.set_header(
            "Content-Disposition", f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        )


class PreviewHandler(_ImageHandler):
    """``GET cometnb/api/records/ID/images/K/preview?history=ID[&px=N]``."""

    @web.authenticated
    @authorized
    async def get(self, record_id: str, k: str) -> None:
        self.guard()
        px = self.px_arg()
        root, image, name = await self.shown(record_id, k)
        tag = await self.services.run(media.preview_tag, image, name, px)
        if tag is None:
            raise web.HTTPError(404, "the image file is not in the history folder")
        self.set_header("Cache-Control", _IMAGE_CACHE)
        self.set_header("Content-Security-Policy", media.INERT_CSP)
        if self.not_modified(tag):
            return
        cache = self.services.previews
        try:
            data, mime = await self.services.run(
                media.preview_bytes, root, image, px, cache, f"{root}|{tag}"
            )
        except (CometError, OSError, ValueError):
            raise web.HTTPError(404, "no preview can be shown for this image") from None
        self.write(data)
        self.finish(set_content_type=mime)

    async def shown(self, record_id: str, k: str) -> tuple[Path, GeneratedImage, str]:
        """The history folder, the image to preview and a name for its cache tag."""
        root, rec, index, image = await self.image(record_id, k)
        return root, image, f"{rec.id}-{index}"


class SourcePreviewHandler(PreviewHandler):
    """``GET cometnb/api/records/ID/sources/K/preview?history=ID[&px=N]``: an edit's input."""

    async def shown(self, record_id: str, k: str) -> tuple[Path, GeneratedImage, str]:
        found, browser = await self.history()
        rec = await self.record(browser, record_id)
        sources = rec.sources
        index = int(k)
        if index >= len(sources) or sources[index].path is None:
            raise web.HTTPError(404, f"record {record_id} has no stored input {index}")
        return found.folder, sources[index].image, f"{rec.id}-s{index}"


class OriginalHandler(_ImageHandler):
    """``GET cometnb/api/records/ID/images/K/original?history=ID``: the stored bytes."""

    @web.authenticated
    @authorized
    async def get(self, record_id: str, k: str) -> None:
        self.guard()
        root, rec, index, image = await self.image(record_id, k)
        assert image.path is not None
        try:
            tag = await self.services.run(media.stat_tag, image.path, rec.id, index)
        except OSError:
            raise web.HTTPError(404, "the image file is not in the history folder") from None
        self.set_header("Cache-Control", _IMAGE_CACHE)
        self.set_header("Content-Security-Policy", media.INERT_CSP)
        if self.not_modified(tag):
            return
        inline = media.inline_type(await self.head_type(root, image.path))
        if inline is None:
            self.attachment(image.path.name)
        await self.stream(root, image.path, inline or media.attachment_type(image.format))


class DownloadHandler(_ImageHandler):
    """``GET cometnb/api/records/ID/images/K/download?history=ID``: a copy labelled with its
    provenance (``GeneratedImage.save``), always as an attachment."""

    @web.authenticated
    @authorized
    async def get(self, record_id: str, k: str) -> None:
        self.guard()
        _root, _rec, _index, image = await self.image(record_id, k)
        try:
            copy = await self.services.run(media.labelled_copy, image)
        except OSError:
            raise web.HTTPError(404, "the image file is not in the history folder") from None
        except CometError as exc:
            raise web.HTTPError(500, f"no copy could be made: {exc}") from None
        try:
            self.set_header("Cache-Control", "no-store")
            self.attachment(copy.name)
            head = await self.head_type(copy.parent, copy)
            await self.stream(
                copy.parent, copy, media.inline_type(head) or media.attachment_type(image.format)
            )
        finally:
            await self.services.run(shutil.rmtree, copy.parent, True)


_ID = r"(?P<record_id>[^/]+)"
_K = r"(?P<k>\d{1,4})"
ROUTES: list[tuple[str, type[_Handler]]] = [
    ("cometnb/api/histories", HistoriesHandler),
    ("cometnb/api/records", RecordsHandler),
    ("cometnb/api/facets", FacetsHandler),
    (f"cometnb/api/records/{_ID}", RecordHandler),
    (f"cometnb/api/records/{_ID}/images/{_K}/preview", PreviewHandler),
    (f"cometnb/api/records/{_ID}/images/{_K}/original", OriginalHandler),
    (f"cometnb/api/records/{_ID}/images/{_K}/download", DownloadHandler),
    (f"cometnb/api/records/{_ID}/sources/{_K}/preview", SourcePreviewHandler),
]
