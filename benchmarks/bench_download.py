"""I/O throughput: URLs from a local server answering in 50 ms, by mode and workers, and
the async downloader against aiohttp + Semaphore. The server runs in its own process,
so its work does not share the benchmark's GIL. Interleaved rounds, medians.
Ideal time = ceil(URLs / workers) x 50 ms. Run: python benchmarks/bench_download.py
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from _common import interleaved, report_spread

import poolkit
from poolkit.download import download_all

URLS, LATENCY = 200, 0.05
RUNS = [("serial", 1), ("thread", 8), ("thread", 16), ("thread", 32), ("thread", 64)]
RUNS += [("thread", 128), ("async", 16), ("async", 64), ("async", 128)]

SERVER = """
import sys
from poolkit.download._server import local_server
with local_server(latency=float(sys.argv[1])) as server:
    print(server.url(""), flush=True)
    sys.stdin.read()
"""


@contextmanager
def server_process(latency: float) -> Iterator[str]:
    """A local test server in a child process; yields its base URL."""
    child = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait(10)


def fetch_all(urls: list[str], mode: str | poolkit.Runner, workers: int | None) -> None:
    results = download_all(urls, mode=mode, workers=workers, retries=0, timeout=10)
    assert results.all_ok, results.errs[:3]


def aiohttp_baseline(urls: list[str], concurrency: int) -> None:
    import aiohttp

    async def main() -> None:
        semaphore = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(url: str) -> bytes:
                async with semaphore, session.get(url) as response:
                    response.raise_for_status()
                    return await response.read()

            await asyncio.gather(*(one(u) for u in urls))

    asyncio.run(main())


def _get_with_a_session_per_thread() -> Callable[[str], bytes]:
    import threading

    import requests

    local = threading.local()

    def get(url: str) -> bytes:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        with session.get(url, timeout=10) as response:
            response.raise_for_status()
            return response.content

    return get


def threads_baseline(urls: list[str], workers: int) -> None:
    """The standard library's way with threads: ThreadPoolExecutor + requests, one
    Session per thread (what the thread downloader does, without its safety)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(_get_with_a_session_per_thread(), urls))


def _with_cpu(
    runners: dict[str, Callable[[], object]],
) -> tuple[dict[str, Callable[[], object]], dict[str, list[float]]]:
    """The runners, each also recording the CPU seconds this process spent per run (all
    its threads): the client's own cost, which the server's pace does not blur."""
    spent: dict[str, list[float]] = {name: [] for name in runners}

    def timed(name: str, run: Callable[[], object]) -> Callable[[], object]:
        def go() -> object:
            before = resource.getrusage(resource.RUSAGE_SELF)
            try:
                return run()
            finally:
                after = resource.getrusage(resource.RUSAGE_SELF)
                spent[name].append(
                    after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                )

        return go

    return {name: timed(name, run) for name, run in runners.items()}, spent


def main() -> tuple[list[str], list[tuple[str, int, float]]]:
    points: list[tuple[str, int, float]] = []
    lines = [
        f"\n## Downloader: {URLS} URLs, server latency {LATENCY * 1000:.0f} ms\n",
        "Median of 3 interleaved rounds; the server runs in its own process.\n",
        "| mode | workers | seconds, median (min-max) | ideal | ratio to ideal |",
        "|---|---|---|---|---|",
    ]
    with server_process(LATENCY) as base:
        urls = [f"{base}/delay/{LATENCY}?n={n}" for n in range(URLS)]
        fetch_all(urls[:10], "thread", 4)  # warm up
        candidates: dict[str, Callable[[], object]] = {}
        for mode, workers in RUNS:
            subset = urls if mode != "serial" else urls[:40]
            candidates[f"{mode} {workers}"] = lambda s=subset, m=mode, w=workers: fetch_all(s, m, w)
        times = interleaved(candidates, rounds=3)
        for mode, workers in RUNS:
            values = times[f"{mode} {workers}"]
            scale = URLS / (40 if mode == "serial" else URLS)
            took = statistics.median(values) * scale
            ideal = math.ceil(URLS / workers) * LATENCY
            points.append((mode, workers, took))
            lines.append(
                f"| {mode} | {workers} | {took:.2f} ({min(values) * scale:.2f}-"
                f"{max(values) * scale:.2f}){' (40 URLs x 5)' if scale != 1 else ''} | "
                f"{ideal:.2f} | {took / ideal:.2f}x |"
            )
        print("\n".join(lines), flush=True)
        if importlib.util.find_spec("aiohttp"):
            many = [f"{base}/delay/{LATENCY}?n={n}" for n in range(2000)]
            # Kept between rounds, with their threads and sessions: the repeated-batch case.
            kept_pool = poolkit.runner("thread", workers=256)
            kept_executor = ThreadPoolExecutor(256)
            get = _get_with_a_session_per_thread()
            runners, spent = _with_cpu(
                {
                    "aiohttp + Semaphore(256)": lambda: aiohttp_baseline(many, 256),
                    "poolkit download_all async (256)": lambda: fetch_all(many, "async", 256),
                    "poolkit download_all thread (256)": lambda: fetch_all(many, "thread", 256),
                    "ThreadPoolExecutor(256) + requests": lambda: threads_baseline(many, 256),
                    "poolkit download_all on a kept thread runner (256)": lambda: fetch_all(
                        many, kept_pool, None
                    ),
                    "a kept ThreadPoolExecutor(256) + requests": lambda: list(
                        kept_executor.map(get, many)
                    ),
                }
            )
            try:
                lines += report_spread(
                    "Downloader: 2,000 URLs x 50 ms, concurrency 256",
                    interleaved(runners, rounds=9),
                    2000,
                    "aiohttp + Semaphore(256)",
                    unit="us/item",
                )
                lines += [
                    "",
                    "The one server process (Python's threading HTTP server, on the same "
                    "two cores) paces every runner here, so the wall times move together. "
                    "The client's own CPU per URL (all its threads, median of the rounds) "
                    "tells the clients apart:",
                    "",
                    *(
                        f"- {name}: {statistics.median(seconds) * 1e6 / 2000:.0f} us"
                        for name, seconds in spent.items()
                    ),
                ]
                print("\n".join(lines[-len(spent) - 3 :]), flush=True)
            finally:
                kept_pool.close()
                kept_executor.shutdown()
    return lines, points


if __name__ == "__main__":
    main()
