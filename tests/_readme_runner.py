"""Run README.md's code as written, in a fresh interpreter and IPython shell (see
tests/test_readme.py): the setup sentence's own code first, then every fenced Python or magic
block in order, then a look-up of every name the README shows. Prints one JSON line."""

from __future__ import annotations

import inspect
import json
import re
import sys
import traceback
from pathlib import Path
from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
SPAN = re.compile(r"`([^`\n]+)`")


def blocks(readme: str) -> list[str]:
    """Fenced blocks tagged ``python`` or untagged (magic cells); shell blocks are skipped."""
    return [body for lang, body in FENCE.findall(readme) if lang in ("", "python")]


def run_blocks(ip: Any, sources: list[str]) -> list[dict[str, str]]:
    failures = []
    for source in sources:
        try:
            if source.startswith("%%"):
                first, _, body = source.partition("\n")
                name, _, line = first[2:].partition(" ")
                ip.run_cell_magic(name, line, body)
            else:
                result = ip.run_cell(source)
                error = result.error_before_exec or result.error_in_exec
                if error is not None:
                    raise error
        except BaseException as exc:  # every failure is reported, whatever its kind
            failures.append({"code": source, "error": "".join(traceback.format_exception(exc))})
    return failures


def names(readme: str, ip: Any) -> list[dict[str, str]]:
    """Every ``cometnb.x.y``, magic, ``CometImg.trait``, method on a README variable and keyword
    the README shows must exist."""
    import cometnb
    from cometnb._client.batch import Batch
    from cometnb._core.generations import GeneratedImage, ImageRequest
    from cometnb.sim import SimServer, use_if_keyless

    text = readme + "\n".join(SPAN.findall(readme))
    missing: list[dict[str, str]] = []

    def need(ok: bool, name: str) -> None:
        if not ok:
            missing.append({"code": name, "error": "not found"})

    for dotted in sorted(set(re.findall(r"\bcometnb(?:\.[A-Za-z_]\w*)+", text))):
        obj: Any = cometnb
        found = True
        for part in dotted.split(".")[1:]:
            if not hasattr(obj, part):
                found = False
                break
            obj = getattr(obj, part)
        need(found, dotted)
    for cell, name in set(re.findall(r"(?<![\w%])(%%?)(\w+)", text)):
        if name in ("config", "load_ext"):
            continue
        kind = "cell" if cell == "%%" else "line"
        need(ip.find_magic(name, kind) is not None, cell + name)
    traits = ip.magics_manager.registry["CometImg"].traits(config=True)
    for trait in set(re.findall(r"CometImg\.(\w+)", text)):
        need(trait in traits, f"CometImg.{trait}")
    receivers = {
        r"\bh\[-?\d\]": cometnb.Record,
        r"\bh": cometnb.History,
        r"\bHistory": cometnb.History,
        r"\bb": Batch,
        r"\bgen\.image": GeneratedImage,
        r"\bClient\([^()]*\)": cometnb.Client,
        r"\bImageRequest\([^()]*\)": ImageRequest,
    }
    for pattern, cls in receivers.items():
        for attr in set(re.findall(pattern + r"\.(\w+)", text)):
            need(hasattr(cls, attr), f"{cls.__name__}.{attr}")
    callables = {
        "Client": cometnb.Client,
        "SimServer": SimServer,
        "use_if_keyless": use_if_keyless,
        "batch": cometnb.batch,
        "mask": cometnb.mask,
    }
    for callee, args in re.findall(r"\b(\w+)\(([^()]*)\)", text):
        target = callables.get(callee)
        if target is None:
            continue
        params = inspect.signature(target).parameters
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for keyword in re.findall(r"(\w+)=", args):
            need(open_ended or keyword in params, f"{callee}({keyword}=)")
    return missing


def main() -> None:
    readme = Path(sys.argv[1]).read_text(encoding="utf-8")
    config = Config()
    config.HistoryAccessor.enabled = False
    ip = InteractiveShell.instance(config=config)
    # The README's own words for a notebook without a key: "run ... cometnb.sim.use_if_keyless()".
    setup = "import cometnb\ncometnb.sim.use_if_keyless()"
    sources = blocks(readme)
    failures = run_blocks(ip, [setup, *sources])
    failures += names(readme, ip)
    print("README-RESULT " + json.dumps({"blocks": len(sources), "failures": failures}))


if __name__ == "__main__":
    main()
