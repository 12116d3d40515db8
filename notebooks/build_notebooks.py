"""Write the demo notebooks (``python notebooks/build_notebooks.py``).

This script is the source of the six ``.ipynb`` files beside it: edit the cells here, run it,
and commit both. The written notebooks carry no outputs and no execution counts (a test checks
that, and that they match this script), and stable cell ids so a rebuild changes only what was
edited.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
# What JupyterLab fills in on open, minus the Python version (which differs per machine), so
# opening a notebook does not mark it modified for these fields.
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}

# The first code cell of every notebook: a no-op with a key, the simulator without one.
KEYLESS = """\
import cometnb.sim

mode = cometnb.sim.use_if_keyless()  # "real" with a key, else "simulator" (synthetic images)"""

REAL_OR_SIM_TEXT = """\
## Real API or simulator

The next cell looks for an API key. If you have one (see *Your API key* {where}), it does
nothing and every call below goes to CometAPI and is billed. Without a key, it starts a small
local simulator that answers like the API. Its images are **synthetic** (generated on this
machine, free of charge), and the cell's output says so."""
REAL_OR_SIM = REAL_OR_SIM_TEXT.format(where="in `01-quickstart.ipynb`")
# The quickstart is the notebook that section is in.
REAL_OR_SIM_HERE = REAL_OR_SIM_TEXT.format(where="below")

Cell = tuple[str, str]  # ("md" | "code", source)


def md(text: str) -> Cell:
    return ("md", text)


def code(text: str) -> Cell:
    return ("code", text)


QUICKSTART: list[Cell] = [
    md("""\
# cometnb quickstart

cometnb adds a `%%cometimg` cell magic to Jupyter. The magic sends a prompt to CometAPI's image
endpoint (`POST /v1/images/generations`, OpenAI-compatible) and shows the result inline. Every
image is saved to a history folder before it is displayed.

This notebook covers loading the extension, giving it your key, making a first image, and the
options you will use most.

**Cost.** Against the real API every image is billed. The examples here keep it small: one
image per request (`n=1`), 1024×1024, `quality low`, and `gpt-image-2`, the cheapest model
that is live (about $0.006 for such an image). The models of December 2026 have their own
notebook, `06-gpt-image-2.6.ipynb`."""),
    md(REAL_OR_SIM_HERE),
    code(KEYLESS),
    md("""\
## Load the extension

`%load_ext cometnb` registers `%%cometimg` and `%cometimg_key`."""),
    code("%load_ext cometnb"),
    md("""\
## Your API key

**Never type or paste the key into a cell.** Cells are saved in the notebook file, and on Binder
the notebook is public. There are two safe ways to give cometnb your key:

1. Set the environment variable before you start Jupyter, e.g.
   `COMETAPI_KEY=sk-... make demo`.
2. Run `%cometimg_key` in a cell. It asks for the key with a masked prompt and keeps it in this
   kernel's memory only. It is never written to the notebook, the history or a log.

If both are set, `%cometimg_key` wins. Because `%cometimg_key` waits for your input, this
notebook does not run it for you.

If the simulator is running, its message above says how to switch to the real API."""),
    md("""\
## A first image

The first line holds the options and the rest of the cell is the prompt. The image is written
to the history folder (`./cometnb-history` beside this notebook) before it is shown. The cell
embeds only a small preview, so the notebook file stays light."""),
    code("""\
%%cometimg -m gpt-image-2 -s 1024x1024 -q low
A lighthouse on a rocky coast at dusk, watercolor"""),
    md("""\
## Keep the result

The magic returns its result, so it also lands in `_`. With `-o NAME` it is bound to a variable
as well. One request gives a `Generation`, and `.image` is its first image. The original file
sits on disk at `.path`."""),
    code("""\
%%cometimg -o fox -m gpt-image-2 -s 1024x1024 -q low
A red fox asleep in fresh snow, soft morning light"""),
    code("""\
img = fox.image
print(img.format, img.width, "x", img.height)
print("saved at", img.path)
print("record", fox.record_id, "took", round(fox.elapsed_s, 1), "s")"""),
    md("""\
## Variables in the prompt

`{name}` is replaced by the value of `name` in the notebook. Write `{{` and `}}` for literal
braces."""),
    code('subject = "a paper boat"'),
    code("""\
%%cometimg -m gpt-image-2 -s 1024x1024 -q low
{subject} on a rain puddle, macro photograph"""),
    md("""\
## Options

| option | meaning |
|---|---|
| `-m/--model` | model (default `gpt-image-2`) |
| `-s/--size` | e.g. `1024x1024`, `1536x1024` (gpt-image-2: any W×H in multiples of 16) |
| `-q/--quality` | `low`, `medium`, `high`, `auto`; 2.5 and 2.6 add `xhigh` and `max` |
| `-n N` | images per request |
| `-f/--format`, `--compression` | `png`, `jpeg`, `webp`, and 0–100 for jpeg/webp |
| `--background` | `transparent`, `opaque`, `auto` |
| `--partial K` | stream K preview images while it works (see `02-compare.ipynb`) |
| `--param KEY=VALUE` | any other API field, passed through |
| `-o NAME`, `--tag TAG` | bind the result, tag the history record |
| `--dry-run` | show the request and send nothing |

`%%cometimg?` shows them all. `--dry-run` is the free way to check a request. It prints the
JSON that would be sent (no key in it) and sends nothing."""),
    code("""\
%%cometimg --dry-run -m gpt-image-2 -s 1536x1024 -q low -f webp --compression 80
A city skyline at night, long exposure"""),
    md("""\
## Refused before anything is sent

Each model accepts only certain sizes, qualities and counts. cometnb checks a request against
the model before it goes out, so a mistake costs nothing. The error names the field and lists
what the model allows. The check is also available from Python:"""),
    code("""\
from cometnb import ImageRequest, ValidationError

try:
    ImageRequest("a lighthouse", model="gpt-image-2", size="800x600").validate()
except ValidationError as err:
    print("refused before sending:", err)"""),
    md("""\
## Session defaults

The defaults are settings of the `CometImg` configurable. `%config CometImg` lists them, and
`%config CometImg.NAME = value` changes one for this session."""),
    code("""\
%config CometImg.model = "gpt-image-2"
%config CometImg.size = "1024x1024"
%config CometImg.quality = "low\""""),
    code("""\
%%cometimg
A bowl of ramen seen from above, flat illustration"""),
    md("""\
## From plain Python

You don't need the magic: `cometnb.Client` does the same in scripts. It uses the same key,
settings and history."""),
    code("""\
import cometnb

client = cometnb.Client()
gen = client.generate(
    "A teapot shaped like a snail, studio photo",
    model="gpt-image-2",
    size="1024x1024",
    quality="low",
)
gen"""),
    md("""\
Next: `02-compare.ipynb` (grids across models, sizes and quality), `03-panel.ipynb` (a form
instead of a magic), `04-history.ipynb` (search, compare, re-run and export what you made),
`05-edit.ipynb` (edits and masks) and `06-gpt-image-2.6.ipynb` (the newest models).

`cometnb.models()` lists every model cometnb knows: whether it is live or was shut down, what
it takes and what one image costs at each quality."""),
]

COMPARE: list[Cell] = [
    md("""\
# Comparing models, sizes and quality

Give any axis option a comma-separated list (`-m`, `-s`, `-q`, `-f`, `--background`), or use
`--each-line` so that every line of the cell is its own prompt. The magic then sends one
request per combination (the cartesian product of the lists), runs them concurrently and shows
a labelled grid.

**Cost.** A grid costs one request per cell: two models × three sizes is six images. Add
`--dry-run` first to see every request the grid would send, for free."""),
    md(REAL_OR_SIM),
    code(KEYLESS),
    code("%load_ext cometnb"),
    md("## Two models, one prompt"),
    code("""\
%%cometimg -m gpt-image-2,gpt-image-2.6-flare -s 1024x1024 -q low
A cozy reading nook with a sleeping cat, isometric illustration"""),
    md("""\
## Sizes

`gpt-image-2` (and 2.5 and 2.6 after it) takes any W×H whose sides are multiples of 16, with
an aspect ratio between 1:3 and 3:1 and 655,360 to 8,294,400 pixels; 1024x1024, 1536x1024
(landscape) and 1024x1536 (portrait) are the usual ones."""),
    code("""\
%%cometimg -m gpt-image-2 -s 1024x1024,1536x1024,1024x1536 -q low
A hot-air balloon over a patchwork of fields"""),
    md("""\
## Quality

Higher quality costs more and takes longer. With gpt-image-2, `high` often takes more than
two minutes. See the whole grid for free with `--dry-run`:"""),
    code("""\
%%cometimg --dry-run -m gpt-image-2 -s 1024x1024 -q low,medium,high
A glass of water on a windowsill, morning light"""),
    md("Then run only the cheap end of it:"),
    code("""\
%%cometimg -m gpt-image-2 -s 1024x1024 -q low,medium
A glass of water on a windowsill, morning light"""),
    md("""\
## Several prompts: `--each-line`

Each non-empty line is its own prompt. `-o grid` binds the result, a `Grid`."""),
    code("""\
%%cometimg --each-line -o grid -m gpt-image-2 -s 1024x1024 -q low
A fox in the snow
A fox in the desert
A fox in the jungle"""),
    md("""\
A `Grid` holds one `Generation` per cell. `grid.axes` lists what varied, and `grid.cell(...)`
picks a cell by its coordinates."""),
    code("""\
print(grid)
print(grid.axes)
for gen in grid:
    print(f"{gen.prompt!r:24} -> {gen.image.path.name}")"""),
    code("""\
grid.cell(prompt="A fox in the desert").generation"""),
    md("""\
## Partial previews while it works

`--partial K` asks the server to stream up to K rough previews, each replacing the last in
place, before the final image arrives. Only GPT image models stream (K is 1 to 3). Whether
previews add to the cost is not documented."""),
    code("""\
%%cometimg --partial 2 -m gpt-image-2 -s 1024x1024 -q low
A watercolor map of an imaginary island"""),
    md("""\
## Concurrency and rate limits

A grid runs up to `CometImg.concurrency` requests at a time (default 4). If the API answers
429 (rate limited), cometnb waits as long as the server asks (`Retry-After`) and retries. The
cell says when it is waiting. To stay further from the limit, lower the concurrency *before*
running your grids, for example with `%config CometImg.concurrency = 2`; it applies to every
grid after it in this session."""),
]

PANEL: list[Cell] = [
    md("""\
# The panel

The panel is a form, for when you would rather use controls than a magic. Type a prompt, pick
the model, size and quality, and press **Generate**. The other fields (format, background,
number of images, partial previews, tags) adapt to the chosen model: a model that cannot take
a value does not offer it. The panel then shows:

* progress, retries and waits while a request runs;
* **Cancel**, which stops the running request (pressing Generate again queues another);
* the newest images, as they arrive;
* a **History** section that lists past records and can load a record's settings back into the
  form, compare the selected records, or export them to HTML or zip.

The panel shares its key, settings and history with `%%cometimg`. Whatever you make here also
shows up in `cometnb.history()` and in `04-history.ipynb`. While no key is configured, the
panel shows a masked key field. Like `%cometimg_key`, it keeps the key in memory only and
clears the field as soon as the key is taken. (In simulator mode the field is hidden.)

**Cost.** Each Generate sends a request. Keep the quality at `low` while you explore."""),
    md(REAL_OR_SIM),
    code(KEYLESS),
    code("""\
import cometnb

p = cometnb.panel()
p"""),
    md("""\
The controls are attributes of the panel, so code can fill in the form. This cell sets up a
cheap request. Press **Generate** above to send it."""),
    code("""\
p.prompt.value = "A lighthouse at dusk, oil painting"
p.model.value = "gpt-image-2"
p.size.value = "1024x1024"
p.quality.value = "low\""""),
    md("""\
If the panel shows up as plain text (`Panel(children=...)`) instead of controls, the notebook
front end lacks ipywidgets support. JupyterLab 4 with `ipywidgets>=8` has it, and so does
Binder. A panel lives in its kernel: after a restart, or when you reopen a saved notebook,
its old output reads "Error displaying widget: model not found" until you run the cell again.

The same history, from Python:"""),
    code("""\
h = cometnb.history()
print(len(h), "records so far")"""),
]

HISTORY: list[Cell] = [
    md("""\
# The history

Every request is recorded, whether it succeeded or failed: prompt, model, settings, usage,
timing and the image files. The history is a folder (a SQLite index plus the images), by
default `./cometnb-history` beside the notebook. It survives kernel restarts, and you can
search it, compare records, re-run them and export them.

Where it lives, by precedence: `%config CometImg.history_dir`, then the `COMETNB_HISTORY`
environment variable, then `./cometnb-history`."""),
    md(REAL_OR_SIM),
    code(KEYLESS),
    code("""\
%load_ext cometnb
import cometnb"""),
    md("""\
A few cheap records to work with. `--tag` labels them for searching later."""),
    code("""\
%%cometimg --each-line --tag history-demo -m gpt-image-2 -s 1024x1024 -q low
A lighthouse at dawn
A lighthouse in a storm"""),
    code("""\
%%cometimg --tag history-demo -m gpt-image-2 -s 1536x1024 -q low
A lighthouse at dawn"""),
    md("""\
## Open it

`cometnb.history()` is the active history. Index it like a list, oldest first, so `h[-1]` is
the newest record."""),
    code("""\
h = cometnb.history()
print(len(h), "records")
h[-1]"""),
    md("""\
## Search

`find` filters by text in the prompt, model, tag and status (`"ok"` or `"error"`). Filters
combine."""),
    code("""\
hits = h.find(text="lighthouse", tag="history-demo")
for rec in hits:
    print(rec.id, rec.model, rec.params.get("size"), rec.status, "-", rec.prompt)"""),
    code("""\
failed = h.find(status="error")
print(len(failed), "failed requests on record")"""),
    md("""\
## Compare

Put records side by side, with the settings that differ highlighted."""),
    code("""\
dawn = h.find(text="lighthouse at dawn", tag="history-demo")
h.compare(dawn[0], dawn[-1])"""),
    md("""\
## Re-run

`rerun` sends a record's request again, optionally with some settings changed. It makes a new
record and leaves the old one untouched. It costs what a new request costs."""),
    code("""\
again = h.rerun(dawn[0], size="1024x1536")
again"""),
    md("""\
## Export

The file suffix picks the format: `.html` gives one self-contained gallery page (previews
embedded, nothing external), `.zip` gives the image files plus `records.jsonl`, and `.jsonl`
the records alone. None of them contains your key. Here they go into the history folder."""),
    code("""\
out_dir = cometnb.history().path / "exports"
out_dir.mkdir(exist_ok=True)
for name in ("gallery.html", "history.zip", "records.jsonl"):
    h.export(out_dir / name)
    print("wrote", out_dir / name)"""),
    md("""\
## As a DataFrame

`to_dataframe()` returns one row per record, indexed by record id. It needs pandas
(`pip install cometnb[pandas]`; `make demo` installs it); without pandas the next cells say so
and the rest of the notebook still runs."""),
    code("""\
import importlib.util

if importlib.util.find_spec("pandas") is None:
    df = None
    print("pandas is not installed: pip install 'cometnb[pandas]' for to_dataframe()")
else:
    df = h.to_dataframe()
df[["model", "size", "quality", "status", "elapsed_s", "prompt"]] if df is not None else None"""),
    code("""\
df.groupby("model")["elapsed_s"].agg(["count", "mean"]) if df is not None else None"""),
    md("""\
## Any history folder

`cometnb.History(path)` opens any history folder, e.g. one copied from another machine.
To make this session write somewhere else, run `%config CometImg.history_dir = "path"`."""),
    code("""\
other = cometnb.History(h.path)
print(len(other) == len(h))"""),
]

EDIT: list[Cell] = [
    md("""\
# Edits and reference images

Most real work with gpt-image models is iterative: generate, pick one, then change it. This
notebook goes through the loop: **generate → edit → edit with a mask → combine two images →
follow the lineage** of the result back to where it started.

An edit sends the input images to `POST /v1/images/edits` (multipart), checked first against
what the model takes: up to 16 inputs for gpt-image models, a mask that is a PNG with an alpha
channel and the size of the first image (gpt-image-2.6 also takes a `markup` drawing instead of
a mask: see `06-gpt-image-2.6.ipynb`). Every input is kept once in the history folder, and every
result remembers where it came from."""),
    md(REAL_OR_SIM),
    code(KEYLESS),
    code("""\
%load_ext cometnb
%config CometImg.model = "gpt-image-2"
%config CometImg.quality = "low"
import datetime as dt

started = dt.datetime.now(dt.timezone.utc)  # the export at the end keeps what this run made"""),
    md("""\
## 1. Generate a starting image

Low quality on `gpt-image-2`, the cheapest live model, keeps a real run to a few cents."""),
    code("""\
%%cometimg -q low -s 1024x1024 -o lighthouse
a lighthouse on a rocky coast, late afternoon"""),
    md("""\
## 2. Edit it

`--image @-1` takes the latest image in the history (`@-2` the one before, `@ID` a record by id,
`@ID:1` its second image). `{lighthouse}` would work too: any notebook value that is an image,
bytes, a path, a `Generation` or a `Record`."""),
    code("""\
%%cometimg -q low --image @-1 -o night
the same scene at night, the lamp lit"""),
    md("""\
## 3. Change only one region

A mask is a PNG whose transparent pixels mark where to edit. `cometnb.mask` builds one for a
box (in pixels, or in fractions of the size as here: the top 40 %, the sky)."""),
    code("""\
import cometnb

sky = cometnb.mask(night, box=(0.0, 0.0, 1.0, 0.4))
storm = cometnb.Client().edit("a dramatic thunderstorm sky", night, mask=sky)
storm"""),
    md("""\
`--dry-run` shows what an edit would send — the multipart fields and each input by name and
size, never its bytes or your key — and sends nothing:"""),
    code("""\
%%cometimg --image {night} --mask {sky} --dry-run
a dramatic thunderstorm sky"""),
    md("""\
## 4. Combine two images

Several `--image` options send several inputs (`image[]` parts); the prompt says how to use
them. A grid works as usual: here one pair of inputs, two prompts."""),
    code("""\
%%cometimg -q low --image @-1 --image {lighthouse} --each-line
the stormy lighthouse, painted in the style of the sunny one
both lighthouses side by side, as a postcard"""),
    md("""\
## 5. Lineage

Each edit's record lists its inputs (`sources`, stored once by content in the history folder)
and its `parent`: the record its first input came from. `lineage` follows the parents back."""),
    code("""\
h = cometnb.history()
last_storm = h.get(storm.record_id)
[(r.kind, r.prompt) for r in h.lineage(last_storm)]"""),
    code("""\
[(s.role, s.label, s.width, s.height) for s in last_storm.sources]"""),
    md("""\
`record.edit` continues from any record, and `h.find(kind="edit")` lists the edits. Exports
carry the sources too: a `.zip` holds their files and `records.jsonl` the links, an `.html`
gallery shows each source beside its result. `export` takes the records to write: here the
ones this notebook made (since `started`), not the whole history."""),
    code("""\
snow = last_storm.edit("now with snow on the rocks")
made_here = [r for r in h.records() if r.created_at >= started]
page = h.export(h.path / "edits.html", made_here)  # beside the history, not the notebook
len(made_here), sum(r.kind == "edit" for r in made_here), page.name"""),
]

GPT_IMAGE_26: list[Cell] = [
    md("""\
# GPT Image 2.6: xhigh, complexity, SVG, GIF and markup

`gpt-image-2.6-flare` and `gpt-image-2.6-sunburst` (OpenAI, 2026-11-04; on CometAPI since
2026-11-05) take everything `gpt-image-2` takes (any W×H in multiples of 16, up to 16 reference
images) and add:

* two qualities above `high`: `xhigh` and `max`;
* `--complexity low|medium|high`: how much the model plans the layout before it draws;
* SVG and animated GIF output, and `markup` edits (an annotated drawing instead of a mask).

`gpt-image-2.5-flare` and `-sunburst` have `xhigh` and `max` but no `complexity`. Whatever a
model does not take is refused before anything is sent.

**Cost.** The same token prices as `gpt-image-2`: about $0.006 for a 1024×1024 image at `low`
and $0.21 at `high`. OpenAI has not published how many tokens `xhigh` and `max` use, so cometnb
prices them at an upper bound (four times `high`, at most $0.84), marked `≤`; each card shows
the real cost from the answer's usage afterwards. With a key this notebook costs about $1.10,
nearly all of it the `xhigh` / `high` comparison, which carries `--budget 1.10`: if its
estimate were higher, it would be refused instead of sent."""),
    md(REAL_OR_SIM),
    code(KEYLESS),
    code("""\
%load_ext cometnb
import cometnb"""),
    md("""\
## What each model takes

`cometnb.models()` is the model table: the status (live; shut down upstream, with the date and
what to use instead; or `assumed`, for a later `gpt-image-2.N` id that `cometnb.refresh_prices()`
learned from CometAPI's lists and gave its family's rules), the qualities, formats,
complexity, references and the price of one 1024×1024 image at each quality."""),
    code("cometnb.models()"),
    code("""\
costs = cometnb.models().prices_by_quality("gpt-image-2.6-flare")
{quality: str(cost) for quality, cost in costs.items()}"""),
    md("""\
`cometnb.refresh_prices()` reads CometAPI's price catalog and, with your key, its model list;
both are kept, dated, in the history folder. A later id in them, such as a
`gpt-image-2.7-flare`, becomes an `assumed` row with 2.6's rules. `models()` also takes ids
by hand, which shows what such a row looks like without changing the prices in force:"""),
    code("""\
later = cometnb.models(["gpt-image-2.7-flare"])
later.status("gpt-image-2.7-flare"), later.source_text("gpt-image-2.7-flare")"""),
    md("""\
## Refused before sending

`xhigh` on `gpt-image-2`, or `complexity` on 2.5, would come back as an error; cometnb says so
before the request goes out, naming the field and what the model allows."""),
    code("""\
from cometnb import ImageRequest, ValidationError

for model, fields in [
    ("gpt-image-2", {"quality": "xhigh"}),
    ("gpt-image-2.5-flare", {"complexity": "low"}),
]:
    try:
        ImageRequest("a poster", model, **fields).validate()
    except ValidationError as err:
        print(f"{model}: {err}")"""),
    md("""\
## `xhigh` against `high`

First the estimate, for free: `--dry-run` lists both requests and what each may cost."""),
    code("""\
%%cometimg --dry-run -m gpt-image-2.6-flare -s 1024x1024 -q high,xhigh
A cutaway illustration of a lighthouse, every room labelled"""),
    md("""\
Then both, side by side. `--budget 1.10` caps what this cell may spend."""),
    code("""\
%%cometimg -m gpt-image-2.6-flare -s 1024x1024 -q high,xhigh --budget 1.10
A cutaway illustration of a lighthouse, every room labelled"""),
    md("""\
## Complexity

`--complexity` sets how much the model plans the layout before it draws (`low`, `medium` or
`high`; only 2.6 takes it). A busy scene shows the difference best; at `low` quality each image
costs about $0.006."""),
    code("""\
%%cometimg -m gpt-image-2.6-flare -s 1024x1024 -q low --complexity low -o plan_low
A city map poster with twelve labelled districts, a legend and a compass rose"""),
    code("""\
%%cometimg -m gpt-image-2.6-flare -s 1024x1024 -q low --complexity high -o plan_high
A city map poster with twelve labelled districts, a legend and a compass rose"""),
    code("""\
cometnb.history().compare(plan_low.record_id, plan_high.record_id)"""),
    md("""\
In the panel (`cometnb.panel()`), a **Complexity** control appears when a 2.6 model is chosen
and is hidden for every other model.

## SVG: a drawing kept as written

`-f svg` asks 2.6 for a vector drawing (one image, not streamed). The answer is kept in the
history byte for byte; the card shows a raster made from it by a real SVG renderer (resvg),
never the SVG itself: an SVG is a program a browser would run if it were put in the page, and
it may carry scripts. The original is a download link on the card."""),
    code("""\
%%cometimg -m gpt-image-2.6-flare -q low -f svg -o logo
A flat vector logo of a lighthouse in two colours, on a plain background"""),
    code("""\
drawing = logo.images[0]
drawing.format, drawing.path.name, drawing.path.read_bytes()[:38]"""),
    md("""\
## An animated GIF

`-f gif` with `--frames` (2 to 16) and `--frame-ms` (how long each frame shows, in steps of
10 ms) makes a short loop. All frames share the pixel budget of one large image, so frames are
smaller the more there are. The card animates from a preview within the preview size; the GIF
itself is on disk."""),
    code("""\
%%cometimg -m gpt-image-2.6-flare -q low -f gif --frames 6 --frame-ms 150 -o beam
The lighthouse beam sweeping across a dark sea, one turn"""),
    code("""\
from PIL import Image

gif = Image.open(beam.images[0].path)
gif.n_frames, gif.info.get("duration")"""),
    md("""\
## A markup edit

Instead of a mask, 2.6 takes `--markup`: a transparent PNG the size of the first image, holding
only your annotations (a circle, an arrow). Here the annotations are drawn with Pillow; a
drawing saved from any editor works the same way (`--markup sketch.png`). A markup cannot be
sent together with a mask, and only 2.6 takes one: both are refused before sending."""),
    code("""\
from PIL import ImageDraw

first = plan_low.images[0]
notes = Image.new("RGBA", (first.width, first.height), (0, 0, 0, 0))
pen = ImageDraw.Draw(notes)
pen.ellipse((600, 120, 900, 420), outline=(230, 30, 30, 255), width=14)
pen.line((380, 620, 640, 380), fill=(230, 30, 30, 255), width=14)
notes"""),
    code("""\
%%cometimg -m gpt-image-2.6-flare -q low --image {plan_low} --markup {notes}
Put a harbour with three boats where the circle is, and a bridge along the arrow"""),
    md("""\
The edit's record keeps the markup beside its input, like a mask: `h.get(id).sources` lists
both, and the sidebar and exports draw it over a checkerboard."""),
]

NOTEBOOKS: dict[str, list[Cell]] = {
    "01-quickstart.ipynb": QUICKSTART,
    "02-compare.ipynb": COMPARE,
    "03-panel.ipynb": PANEL,
    "04-history.ipynb": HISTORY,
    "05-edit.ipynb": EDIT,
    "06-gpt-image-2.6.ipynb": GPT_IMAGE_26,
}


def build(name: str, cells: list[Cell]) -> NotebookNode:
    """One notebook, outputs stripped, with deterministic cell ids."""
    stem = name.removesuffix(".ipynb").split("-", 1)[1].replace(".", "-")  # ids: no dots
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    for i, (kind, source) in enumerate(cells):
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        cell = make(source)
        cell["id"] = f"{stem}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(nb: NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv: list[str]) -> int:
    """Write the notebooks; with ``--check``, only report whether the files are up to date."""
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = render(build(name, cells))
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if "--check" not in argv:
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if "--check" in argv else "written"
    print(f"{verb}: {', '.join(stale)}" if stale else "notebooks are up to date")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
