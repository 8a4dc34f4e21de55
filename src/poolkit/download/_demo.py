"""``poolkit demo``: the classic "download 15 sites" exercise, offline, in every mode."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TextIO

import poolkit

from . import download_all, redact
from ._server import local_server

__all__ = ["run_demo"]


def run_demo(
    *,
    sites: int = 15,
    latency: float = 0.25,
    workers: int = 8,
    modes: Sequence[str] = ("serial", "thread", "process", "async"),
    faults: bool = False,
    out: TextIO,
) -> bool:
    """Serve the pages locally, download them in each mode, print the comparison.

    Returns True when every mode downloaded every page (faults make some fail by design).
    """
    timeout = max(1.0, 4 * latency)
    with local_server(latency=latency, faults=faults, slow=timeout * 2) as server:
        urls = server.demo_urls(sites)
        print(
            f"Serving {sites} pages on {server.base} ({latency * 1000:.0f} ms latency"
            f"{', with faults' if faults else ''}).\n",
            file=out,
        )
        baseline = None
        all_ok = True
        for mode in modes:
            server.reset()
            began = time.perf_counter()
            results = download_all(urls, mode=mode, workers=workers, timeout=timeout, retries=2)
            took = time.perf_counter() - began
            if baseline is None:
                baseline, compared = took, f"(the baseline, {mode})"
            else:
                compared = f"({baseline / took:.1f}x {modes[0]})"
            print(f"{mode:>7}: Download {sites} sites in {took:.2f} seconds  {compared}", file=out)
            # with --faults, one page is slower than the timeout by design
            all_ok &= _print_outcomes(results, out) or (faults and len(results.errs) <= 1)
        print(
            "\nThreads and async overlap the waiting; processes pay a start-up cost "
            "but would also spread CPU work across cores.",
            file=out,
        )
    return all_ok


def _print_outcomes(results: poolkit.Results[Any], out: TextIO) -> bool:
    oks = [r for r in results if isinstance(r, poolkit.Ok)]
    line = f"         {len(oks)} ok"
    for failed in results.errs:
        line += f"; {redact(str(failed.item)).rsplit('/', 1)[-1]}: {type(failed.error).__name__}"
        line += f" after {failed.attempts} attempt(s)"
    retried = sum(1 for r in oks if r.attempts > 1)
    if retried:
        line += f"; {retried} succeeded on retry"
    print(line, file=out)
    return results.all_ok
