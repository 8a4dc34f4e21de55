"""``poolkit demo``: the classic "download 15 sites" exercise, offline, in every mode."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
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
    timeout: float | None = None,
    out: TextIO,
) -> bool:
    """Serve the pages locally, download them in each mode, print the comparison.

    Returns True when every mode downloaded every page (faults make some fail by design).
    """
    timeout = timeout or max(1.0, 4 * latency)
    with local_server(latency=latency, faults=faults, slow=timeout * 2) as server:
        urls = server.demo_urls(sites)
        print(
            f"Serving {sites} pages on {server.base} ({latency * 1000:.0f} ms latency"
            f"{', with faults' if faults else ''}); {workers} workers per mode, "
            f"{os.cpu_count()} CPU cores.\n",
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
            "\nThreads and async overlap the waiting (I/O releases the GIL); processes pay "
            "a start-up cost here. Now the other half of the lesson: CPU work.\n",
            file=out,
        )
        _cpu_half(workers, out)
        _futures_half(server.url, urls, workers, timeout, out)
    return all_ok


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def _cpu_half(workers: int, out: TextIO) -> None:
    """The same CPU work serial, in threads and in processes: the GIL, measured."""
    cores = os.cpu_count() or 1
    width = min(workers, cores)
    work = [1_500_000] * (4 * width)
    print(f"CPU-bound: {len(work)} tasks of pure-Python arithmetic, {width} workers:", file=out)
    baseline = None
    for mode in ("serial", "thread", "process"):
        with poolkit.runner(mode, workers=width) as r:
            r.run_all(_burn, [1])  # warm: start-up is not the point here
            began = time.perf_counter()
            r.run_all(_burn, work)
            took = time.perf_counter() - began
        baseline = baseline or took
        print(f"{mode:>9}: {took:.2f} s  ({baseline / took:.1f}x serial)", file=out)
    print(
        "Threads do not speed up CPU work: the GIL lets one thread run Python bytecode at a "
        f"time. Processes do: {width} interpreters on {cores} cores.\n",
        file=out,
    )


def _futures_half(
    url: Callable[[str], str], urls: list[str], workers: int, timeout: float, out: TextIO
) -> None:
    """Submit the downloads, print each as it completes; one failing site handled alone."""
    from concurrent.futures import as_completed

    from . import FetchError, download_all

    print("Futures: submit each download, handle each as it completes:", file=out)
    sites = [*urls[:4], url("/status/404")]
    with poolkit.Executor("thread", workers=workers) as pool:
        futures = {
            pool.submit(download_all, [site], retries=0, timeout=timeout): site for site in sites
        }
        for future in as_completed(futures):
            result = future.result()[0]
            name = redact(futures[future]).rsplit("/", 1)[-1]
            if isinstance(result, poolkit.Ok):
                print(f"  done   {name}: {result.value.bytes} bytes", file=out)
            elif isinstance(result.error, FetchError):
                print(f"  failed {name}: {result.error} (the others go on)", file=out)
    print(
        "as_completed hands over each future as it finishes; an error stays with its own site.",
        file=out,
    )


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
