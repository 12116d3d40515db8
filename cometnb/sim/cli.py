"""``python -m cometnb.sim``: the simulator in the foreground, with a banner saying how to
point cometnb at it, until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from cometnb.sim.control import SimServer

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cometnb.sim",
        description="Run cometnb's offline CometAPI simulator (synthetic images, no billing).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--url-ttl", type=float, default=3600.0, help="URL lifetime, seconds")
    parser.add_argument("--texture", choices=("smooth", "photo"), default="smooth")
    parser.add_argument(
        "--svg",
        choices=("clean", "hostile"),
        default="clean",
        help="SVG answers: a plain drawing, or one carrying a script, onload and a file link",
    )
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    parser.add_argument("--verbose", action="store_true", help="log each request line")
    parser.add_argument("--rpm", type=float, default=None, help="requests per minute per key")
    parser.add_argument("--ipm", type=float, default=None, help="images per minute per key")
    parser.add_argument("--burst", type=float, default=None, help="requests allowed at once")
    parser.add_argument(
        "--ratelimit-headers",
        action="store_true",
        help="send x-ratelimit-limit/remaining/reset-requests on every answer",
    )
    parser.add_argument(
        "--c2pa",
        action="store_true",
        default=None,
        help="sign images with Content Credentials from a throwaway test CA "
        "(needs cometnb[c2pa]; also $COMETNB_SIM_C2PA=1)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve in the foreground until Ctrl+C (or SIGTERM)."""
    args = _parse_args(argv)
    server = SimServer(
        args.host,
        args.port,
        latency=args.latency,
        url_ttl=args.url_ttl,
        api_key=args.api_key,
        texture=args.texture,
        svg=args.svg,
        verbose=args.verbose,
        rpm=args.rpm,
        ipm=args.ipm,
        burst=args.burst,
        ratelimit_headers=args.ratelimit_headers,
        sign_c2pa=args.c2pa,
    )
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    _print_banner(server, args.api_key)
    if server.signs_c2pa:
        print("Images carry Content Credentials (C2PA) from a throwaway test CA.", flush=True)
    if args.rpm or args.ipm:
        limits = [
            f"{v:g} {unit} a minute"
            for v, unit in ((args.rpm, "requests"), (args.ipm, "images"))
            if v
        ]
        print(
            f"Rate limit per key: {' and '.join(limits)} (429 with Retry-After beyond).", flush=True
        )
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print("cometnb simulator stopped.", flush=True)
    return 0


def _print_banner(server: SimServer, fixed_key: str | None) -> None:
    key = fixed_key and "<the --api-key value>"
    lines = [
        f"cometnb simulator listening on {server.base_url}",
        "Images are SYNTHETIC (drawn locally, stamped SIMULATED); nothing reaches CometAPI.",
        "Point cometnb at it (any non-empty placeholder key works):"
        if key is None
        else "Point cometnb at it (only the --api-key value is accepted):",
        f"  export COMETAPI_BASE_URL={server.base_url}",
        f"  export COMETAPI_KEY={key or 'sim-demo'}",
        f'  or in Python: Client(api_key="{key or "sim-demo"}", base_url="{server.base_url}")',
        "Press Ctrl+C to stop.",
    ]
    if server.host not in ("127.0.0.1", "localhost", "::1"):
        lines.insert(1, f"WARNING: bound to {server.host}, not loopback: others can reach it.")
    print("\n".join(lines), flush=True)
