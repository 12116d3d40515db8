"""The JSON routes against a real server: auth on every route, ``history=`` only naming a
discovered history, and pages and filters that are exactly ``History.find``'s answers."""

from __future__ import annotations

import collections
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from _seed_history import seed

from cometnb._server.catalog import history_id
from cometnb._storage.folder import History
from cometnb._storage.records import Record
from server.jupyter import Server


def _main(server: Server) -> History:
    return History(server.root / "proj" / "cometnb-history")


def _routes(server: Server, hid: str) -> list[str]:
    rid = server.ids["chain"][-1]
    return [
        "/cometnb/api/histories",
        f"/cometnb/api/records?history={hid}",
        f"/cometnb/api/facets?history={hid}",
        f"/cometnb/api/records/{rid}?history={hid}",
        f"/cometnb/api/records/{rid}/images/0/preview?history={hid}",
        f"/cometnb/api/records/{rid}/images/0/original?history={hid}",
        f"/cometnb/api/records/{rid}/images/0/download?history={hid}",
        f"/cometnb/api/records/{rid}/sources/0/preview?history={hid}",
    ]


def _all_pages(api: httpx.Client, params: dict[str, Any], limit: int = 37) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    totals = set()
    while True:
        page = api.get(
            "/cometnb/api/records", params={**params, "offset": len(rows), "limit": limit}
        )
        assert page.status_code == 200, page.text
        body = page.json()
        totals.add(body["total"])
        rows += body["records"]
        if len(body["records"]) < limit:
            break
    assert totals == {len(rows)}
    return rows


# --- auth ----------------------------------------------------------------------------------


def test_every_route_answers_with_the_token(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    for url in _routes(server, main_id):
        assert api.get(url).status_code == 200, url


@pytest.mark.parametrize("headers", [{}, {"Authorization": "token wrong"}], ids=["none", "wrong"])
def test_every_route_refuses_requests_without_auth(
    server: Server, main_id: str, headers: dict[str, str]
) -> None:
    with server.client(token=False, headers=headers) as anonymous:
        for url in _routes(server, main_id):
            r = anonymous.get(url)
            assert r.status_code == 403, url
            assert server.ids["chain"][-1] not in r.text  # nothing of the history leaks


def _logged_in(server: Server) -> httpx.Client:
    """A browser-like client: logged in with the login cookie, no token header."""
    c = server.client(token=False, follow_redirects=False)
    try:
        c.get("/login")
        xsrf = c.cookies["_xsrf"]
        done = c.post("/login", data={"password": server.token, "_xsrf": xsrf})
        assert done.status_code == 302, done.text
    except BaseException:
        c.close()
        raise
    return c


def test_cookie_requests_need_the_xsrf_token_or_a_same_site_referer(
    server: Server, main_id: str
) -> None:
    """Jupyter's check for GETs of files: another site cannot embed these URLs in a browser
    that is logged in (its Referer is foreign and it cannot read the _xsrf cookie)."""
    browser = _logged_in(server)
    try:
        xsrf = browser.cookies["_xsrf"]
        for url in _routes(server, main_id):
            foreign = browser.get(url, headers={"Referer": "https://evil.example/page"})
            assert foreign.status_code == 403, url
            assert browser.get(url).status_code == 403, url  # no Referer, no token
            same_site = browser.get(url, headers={"Referer": f"{server.url}/lab"})
            assert same_site.status_code == 200, url
            assert browser.get(url, headers={"X-XSRFToken": xsrf}).status_code == 200, url
    finally:
        browser.close()


# --- which histories ------------------------------------------------------------------------


def test_histories_are_found_under_the_root_and_in_the_environment(
    server: Server, api: httpx.Client
) -> None:
    body = api.get("/cometnb/api/histories").json()
    found = {h["path"]: h for h in body["histories"]}
    outside = server.ids["outside"]
    assert {
        "proj/cometnb-history",
        "a/b/c/cometnb-history",  # three levels below the root: the deepest looked at
        "live/cometnb-history",
        str(Path(outside).resolve()),  # $COMETNB_HISTORY, outside the root
    } <= set(found)  # (other tests add histories of their own while serving)
    skipped = ("a/b/c/d/", ".hidden/", "node_modules/", "venv/")
    assert not [p for p in found if p.startswith(skipped)]  # too deep, hidden, packages
    assert body["truncated"] is False
    assert found["proj/cometnb-history"]["records"] == len(_main(server))
    assert found["a/b/c/cometnb-history"]["records"] == 3
    for path, entry in found.items():
        folder = (server.root / path).resolve() if not path.startswith("/") else Path(path)
        assert entry["id"] == history_id(folder)  # opaque, and the same after a restart
        assert len(entry["id"]) == 16 and path not in entry["id"]
    again = api.get("/cometnb/api/histories", params={"refresh": "1"}).json()
    assert [h["id"] for h in again["histories"]] == [h["id"] for h in body["histories"]]


def test_a_history_created_while_serving_is_found_by_its_id(
    server: Server, api: httpx.Client
) -> None:
    folder = server.root / "later" / "cometnb-history"
    seed(folder, 4)
    hid = history_id(folder.resolve())
    r = api.get("/cometnb/api/records", params={"history": hid})  # no listing asked first
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 4


@pytest.mark.parametrize(
    "value",
    [
        "../../etc",
        "/etc/passwd",
        "proj/cometnb-history",
        "..%2F..%2Fetc",
        "0123456789abcdef",  # well formed, not a history
        "9FA18026413A2FC5",
        "",
        "a" * 64,
    ],
)
def test_history_names_only_a_discovered_id(server: Server, api: httpx.Client, value: str) -> None:
    rid = server.ids["chain"][-1]
    for url in (
        "/cometnb/api/records",
        "/cometnb/api/facets",
        f"/cometnb/api/records/{rid}",
        f"/cometnb/api/records/{rid}/images/0/preview",
        f"/cometnb/api/records/{rid}/images/0/original",
        f"/cometnb/api/records/{rid}/images/0/download",
    ):
        r = api.get(url, params={"history": value})
        assert r.status_code in (400, 404), (url, r.status_code)
        assert "cometnb/api/histories" in r.json()["message"]


def test_a_history_outside_the_root_is_not_reachable_by_its_id(
    server: Server, api: httpx.Client, tmp_path: Path
) -> None:
    stray = tmp_path / "cometnb-history"
    seed(stray, 2)
    r = api.get("/cometnb/api/records", params={"history": history_id(stray.resolve())})
    assert r.status_code == 404


def test_unknown_records_and_images_are_404(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    rid = server.ids["chain"][-1]
    failed = _main(server).find(status="error")[0].id
    for url in (
        "/cometnb/api/records/20990101-000000-0000-000000",
        "/cometnb/api/records/..%2F..%2Fetc",
        f"/cometnb/api/records/{rid}/images/1/original",
        f"/cometnb/api/records/{rid}/images/99/preview",
        f"/cometnb/api/records/{failed}/images/0/original",
        f"/cometnb/api/records/{rid}/sources/9/preview",
    ):
        assert api.get(url, params={"history": main_id}).status_code == 404, url
    bad_index = api.get(
        f"/cometnb/api/records/{rid}/images/-1/original", params={"history": main_id}
    )
    assert bad_index.status_code == 404


# --- pages and filters ----------------------------------------------------------------------


def _expected(rec: Record) -> dict[str, Any]:
    return {
        "id": rec.id,
        "created_at": rec.created_at.isoformat(),
        "prompt": rec.prompt,
        "model": rec.model,
        "params": rec.params,
        "status": rec.status,
        "error": rec.error,
        "tags": list(rec.tags),
        "cost_usd": rec.cost.usd,
        "parent": rec.parent,
        "kind": rec.kind,
        "images": [
            {"index": k, "width": i.width, "height": i.height, "format": i.format}
            for k, i in enumerate(rec.images)
        ],
    }


def _contract(row: dict[str, Any]) -> dict[str, Any]:
    """The fields DESIGN.md §1 fixes (others may be added)."""
    out = {k: row[k] for k in ("id", "created_at", "prompt", "model", "params", "status")}
    out |= {k: row[k] for k in ("error", "tags", "cost_usd", "parent", "kind")}
    out["images"] = [
        {k: i[k] for k in ("index", "width", "height", "format")} for i in row["images"]
    ]
    return out


def test_pages_walk_the_whole_history_newest_first(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    h = _main(server)
    everything = h.records()[::-1]
    assert len(everything) > 220
    rows = _all_pages(api, {"history": main_id})
    assert [_contract(r) for r in rows] == [_expected(r) for r in everything]
    kinds = collections.Counter(r["status"] for r in rows)
    assert kinds["ok"] and kinds["error"] and kinds["cancelled"]  # a mixed history
    assert any(r["parent"] for r in rows) and any(len(r["prompt"]) > 150 for r in rows)
    first = api.get("/cometnb/api/records", params={"history": main_id}).json()
    assert (first["offset"], first["limit"], len(first["records"])) == (0, 50, 50)
    assert first["newest"] == everything[0].id
    beyond = api.get("/cometnb/api/records", params={"history": main_id, "offset": 10_000})
    assert beyond.json()["records"] == [] and beyond.json()["total"] == len(everything)


FIND_FILTERS = [
    {"text": "fox"},
    {"text": "FOX"},
    {"text": "aurora"},  # only in a revised prompt
    {"text": "quiet street"},
    {"text": "take 1"},
    {"text": "50%"},  # LIKE's wildcards are literal
    {"text": "oil_painting"},
    {"text": "ÉTÉ"},
    {"model": "dall-e-3"},
    {"model": "no-such-model"},
    {"status": "error"},
    {"status": "cancelled"},
    {"tag": "poster"},
    {"tag": "straße"},
    {"tag": "été"},
    {"tag": "post"},  # a part of a tag is not the tag
    {"text": "snow", "status": "ok", "model": "gpt-image-1"},
    {"tag": "night", "text": "door"},
    {"model": "gpt-image-2", "status": "ok", "tag": "study"},
]


@pytest.mark.parametrize(
    "filters", FIND_FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items())
)
def test_filters_give_history_find_answers(
    server: Server, main_id: str, api: httpx.Client, filters: dict[str, str]
) -> None:
    expected = _main(server).find(**filters)[::-1]
    params = {"q" if k == "text" else k: v for k, v in filters.items()}
    rows = _all_pages(api, {"history": main_id, **params}, limit=23)
    assert [r["id"] for r in rows] == [r.id for r in expected]
    assert [_contract(r) for r in rows] == [_expected(r) for r in expected]


def test_the_search_finds_what_it_should(server: Server, main_id: str, api: httpx.Client) -> None:
    """Not only the same as find: the expected records themselves (guards the reference)."""
    q = api.get("/cometnb/api/records", params={"history": main_id, "q": "AURORA"}).json()
    assert [r["id"] for r in q["records"]] == [server.ids["revised"][0]]
    tag = api.get("/cometnb/api/records", params={"history": main_id, "tag": "straße"}).json()
    assert {r["id"] for r in tag["records"]} == set(server.ids["revised"])
    edits = api.get("/cometnb/api/records", params={"history": main_id, "tag": "edit"}).json()
    assert [r["id"] for r in edits["records"]] == server.ids["chain"][:0:-1]
    assert all(r["kind"] == "edit" for r in edits["records"])


def test_date_range(server: Server, main_id: str, api: httpx.Client) -> None:
    records = _main(server).records()
    since, until = records[40].timestamp, records[90].timestamp
    rows = _all_pages(api, {"history": main_id, "since": since, "until": until})
    assert [r["id"] for r in rows] == [r.id for r in records[40:90]][::-1]
    # ISO forms: a day (UTC) and a time with an offset.
    day = records[0].created_at.date().isoformat()
    whole_day = _all_pages(api, {"history": main_id, "since": day, "model": "dall-e-3"})
    assert len(whole_day) == len(_main(server).find(model="dall-e-3"))
    iso = records[100].created_at.isoformat()
    later = _all_pages(api, {"history": main_id, "since": iso})
    assert [r["id"] for r in later] == [r.id for r in records[100:]][::-1]
    none = api.get("/cometnb/api/records", params={"history": main_id, "until": day})
    assert none.json()["total"] == 0


@pytest.mark.parametrize(
    "low,high", [(None, 0.0), (0.0, 0.02), (0.01, None), (0.04, 0.2), (None, None)]
)
def test_cost_range(
    server: Server, main_id: str, api: httpx.Client, low: float | None, high: float | None
) -> None:
    """Inclusive bounds; unknown costs never match a range; records that kept no cost are
    priced as ``Record.cost`` prices them (in Python)."""
    records = _main(server).records()

    def fits(rec: Record) -> bool:
        usd = rec.cost.usd
        if low is None and high is None:
            return True
        return usd is not None and (low is None or usd >= low) and (high is None or usd <= high)

    expected = [r.id for r in records if fits(r)][::-1]
    params = {k: v for k, v in (("min_cost", low), ("max_cost", high)) if v is not None}
    rows = _all_pages(api, {"history": main_id, **params})
    assert [r["id"] for r in rows] == expected
    assert len(expected) > 0 or (low, high) == (None, 0.0)
    if params:
        assert all(r["cost_usd"] is not None for r in rows)


def test_cost_range_includes_records_that_kept_no_cost(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    h = _main(server)
    old = [h.get(i) for i in server.ids["no_cost"]]
    usd = [r.cost.usd for r in old if r is not None]
    assert all(u is not None and u > 0 for u in usd) and all(r and r.cost.estimated for r in old)
    rows = _all_pages(api, {"history": main_id, "min_cost": min(usd), "max_cost": max(usd)})
    assert set(server.ids["no_cost"]) <= {r["id"] for r in rows}


@pytest.mark.parametrize(
    "params,message",
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 200"),
        ({"limit": "201"}, "limit must be a whole number from 1 to 200"),
        ({"offset": "-1"}, "offset must be a whole number"),
        ({"offset": "ten"}, "offset must be a whole number"),
        ({"status": "failed"}, "status must be one of ok, error, cancelled"),
        ({"since": "last tuesday"}, "since must be an ISO date"),
        ({"until": "2026-13-01"}, "until must be an ISO date"),
        ({"since": "nan"}, "since must be an ISO date"),
        ({"until": "1e400"}, "until must be an ISO date"),
        ({"min_cost": "-1"}, "min_cost must be a non-negative number"),
        ({"max_cost": "nan"}, "max_cost must be a non-negative number"),
        ({"max_cost": "inf"}, "max_cost must be a non-negative number"),
    ],
)
def test_bad_parameters_are_400_with_what_is_allowed(
    main_id: str, api: httpx.Client, params: dict[str, str], message: str
) -> None:
    r = api.get("/cometnb/api/records", params={"history": main_id, **params})
    assert r.status_code == 400
    assert r.json()["message"].startswith(message)


def test_history_is_required(api: httpx.Client) -> None:
    r = api.get("/cometnb/api/records")
    assert r.status_code == 400 and "history is required" in r.json()["message"]


# --- one record, facets ---------------------------------------------------------------------


def test_a_record_in_full_with_sources_and_lineage(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    h = _main(server)
    chain = server.ids["chain"]
    body = api.get(f"/cometnb/api/records/{chain[-1]}", params={"history": main_id}).json()
    rec = h.get(chain[-1])
    assert rec is not None
    assert _contract(body) == _expected(rec)
    assert [r["id"] for r in body["lineage"]] == [r.id for r in h.lineage(rec)] == chain
    assert [s["role"] for s in body["sources"]] == ["image", "mask"]
    image, cut = body["sources"]
    assert (image["record"], image["index"], image["position"]) == (chain[-2], 0, 0)
    assert (cut["record"], cut["index"], cut["position"]) == (None, None, 1)
    assert image["available"] and cut["available"]
    assert body["cost_basis"] == rec.cost.basis and body["usage"] == rec.usage
    first = api.get(f"/cometnb/api/records/{chain[0]}", params={"history": main_id}).json()
    assert first["children"] == [chain[1]] and first["sources"] == []
    assert [r["id"] for r in first["lineage"]] == [chain[0]]


def test_a_failed_record_in_full(server: Server, main_id: str, api: httpx.Client) -> None:
    rec = _main(server).find(status="error")[0]
    body = api.get(f"/cometnb/api/records/{rec.id}", params={"history": main_id}).json()
    assert body["status"] == "error" and body["images"] == []
    assert body["error"] == rec.error and body["error"].startswith(("Your request", "upstream"))
    assert body["error_info"] == rec.error_info and body["error_info"]["status"] in (400, 503)


def test_facets_count_what_the_history_holds(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    records = _main(server).records()
    body = api.get("/cometnb/api/facets", params={"history": main_id}).json()

    def counted(values: collections.Counter[str]) -> list[dict[str, Any]]:
        return [{"value": k, "count": n} for k, n in sorted(values.items())]

    assert body["models"] == counted(collections.Counter(r.model for r in records))
    assert body["statuses"] == counted(collections.Counter(r.status for r in records))
    assert body["tags"] == counted(collections.Counter(t for r in records for t in r.tags))
    assert math.isclose(body["first"], records[0].timestamp)
    assert math.isclose(body["last"], records[-1].timestamp)
    assert body["records"] == len(records)


def test_a_damaged_index_is_reported_not_crashed_on(server: Server, api: httpx.Client) -> None:
    folder = server.root / "broken" / "cometnb-history"
    folder.mkdir(parents=True)
    (folder / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    hid = history_id(folder.resolve())
    listed = api.get("/cometnb/api/histories", params={"refresh": "1"}).json()["histories"]
    entry = next(h for h in listed if h["id"] == hid)
    assert entry["path"] == "broken/cometnb-history" and "damaged" in entry["error"]
    assert "repair()" in entry["error"]
    for url in ("/cometnb/api/records", "/cometnb/api/facets", "/cometnb/api/records/x"):
        r = api.get(url, params={"history": hid})
        assert r.status_code == 503, url
        assert "damaged" in r.json()["message"]
    assert (folder / "index.sqlite3").read_bytes() == b"this is not a database" * 100
