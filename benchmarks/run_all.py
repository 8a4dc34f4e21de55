"""Run every benchmark side by side and write docs/benchmarks.md (with plots when
matplotlib is installed: ``pip install 'poolkit[bench]'``). This is what ``make bench`` runs.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_bigdata
import bench_cold
import bench_cpu
import bench_dask
import bench_download
import bench_memory
import bench_overhead
import bench_recovery
from _common import load_average

DOCS = HERE.parent / "docs"


def plots(
    overhead: list[str],
    cpu: list[tuple[int, float, float, float]],
    io: list[tuple[str, int, float]],
) -> list[str]:
    if not importlib.util.find_spec("matplotlib"):
        return ["\n(Install the bench extra for plots: `pip install 'poolkit[bench]'`.)"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    # the process-mode table at 20,000 items: median us/item per runner
    title = overhead.index(next(t for t in overhead if "Process mode" in t and "20,000" in t))
    rows = []
    for line in overhead[title + 1 :]:
        if line.startswith("\n## "):
            break  # the next table
        if line.startswith("| ") and "median" not in line:
            rows.append(line.split("|"))
    names = [r[1].strip() for r in rows]
    costs = [float(r[2].split()[0]) for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(names) + 1.2))
    ax.barh(names, costs, color=["#4c72b0" if "poolkit" in n else "#bbbbbb" for n in names])
    ax.set_xscale("log")
    ax.set_xlabel("microseconds per trivial task, median (log scale)")
    ax.set_title("Process mode, N = 20,000, 2 workers", loc="right")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(DOCS / "bench-overhead.png", dpi=100)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    workers = [w for w, *_ in cpu]
    ax.errorbar(
        workers,
        [m for _, m, _, _ in cpu],
        yerr=[[m - lo for _, m, lo, _ in cpu], [hi - m for _, m, _, hi in cpu]],
        marker="o",
        capsize=3,
        label="poolkit process, warm",
    )
    cores = os.cpu_count() or 1
    ax.plot(workers, [min(w, cores) for w in workers], "--", color="grey", label="ideal")
    ax.set_ylim(bottom=0, top=max(max(hi for *_, hi in cpu), cores) * 1.15)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("worker processes")
    ax.set_ylabel("speed-up over serial")
    ax.set_title(f"CPU-bound, {cores} cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(DOCS / "bench-cpu.png", dpi=100)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode in ("thread", "async"):
        points = [(w, 200 / s) for m, w, s in io if m == mode]
        ax.plot([w for w, _ in points], [t for _, t in points], marker="o", label=mode)
    counts = sorted({w for m, w, _ in io if m != "serial"})
    ideal = [200 / (-(-200 // w) * bench_download.LATENCY) for w in counts]
    ax.plot(counts, ideal, "--", color="grey", label="ideal")
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("workers")
    ax.set_ylabel("URLs per second")
    ax.set_title("200 URLs, 50 ms server latency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(DOCS / "bench-io.png", dpi=100)
    plt.close("all")
    return [
        "\n## Plots\n",
        "![per-task overhead](bench-overhead.png)",
        "",
        "![CPU speed-up by workers](bench-cpu.png)",
        "",
        "![I/O throughput by workers](bench-io.png)",
    ]


def replot() -> None:
    """Draw the plots again from the tables in docs/benchmarks.md (no measuring)."""
    lines = (DOCS / "benchmarks.md").read_text().splitlines()
    overhead = [("\n" + line if line.startswith("## ") else line) for line in lines]
    cpu = []
    io = []
    section = ""
    for line in lines:
        if line.startswith("## "):
            section = line
        cells = [c.strip() for c in line.strip("|").split("|")]
        if "by worker count" in section and line.startswith("| ") and cells[0].isdigit():
            mid, spread = cells[1].split(" ", 1)
            lo, hi = spread.strip("()").split("-")
            cpu.append((int(cells[0]), float(mid.rstrip("x")), float(lo), float(hi.rstrip("x"))))
        if section.startswith("## Downloader") and line.startswith("| ") and cells[1].isdigit():
            io.append((cells[0], int(cells[1]), float(cells[2].split()[0])))
    plots(overhead, cpu, io)


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what users get: cached bytecode
    started = time.perf_counter()
    load = load_average()
    cold = bench_cold.main()
    overhead = bench_overhead.main()
    cpu, _ = bench_cpu.speedup_table()
    cpu_workers, cpu_points = bench_cpu.by_workers()
    memory = bench_memory.main()
    bigdata = bench_bigdata.main()
    io_lines, io_points = bench_download.main()
    dask = bench_dask.main()
    recovery = bench_recovery.main()
    threads = {w: secs for mode, w, secs in io_points if mode == "thread"}
    efficiency = {w: (-(-200 // w) * 0.05) / secs for w, secs in threads.items()}
    header = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (benchmarks/run_all.py) in one run on one machine. Every",
        "table is measured interleaved: each runner runs once per round, in turn, for",
        "several rounds, and the table gives the median with the min-max spread. Ratios",
        "are medians of per-round ratios (each round against the same round's baseline,",
        "so a machine that slows down for a while drifts out of them), to the standard",
        "library and to the **hand-tuned floor**: the fastest way a",
        "careful programmer gets the job done with the standard library alone (for",
        "example `ProcessPoolExecutor.map` with a chunksize picked for the batch). Lower",
        "us/item and lower ratios are better. Nothing here is checked by the test suite.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {datetime.date.today().isoformat()}, "
        f"load average {load} at the start. Run: `make bench` (about "
        "{minutes} minutes).",
    ]
    notes = [
        "\n## Reading these numbers\n",
        "- More threads give diminishing returns for I/O: thread mode reaches "
        f"{efficiency[8]:.0%} of the ideal with 8 threads but {efficiency[128]:.0%} with 128: "
        "the server and the GIL become the bottleneck (see the I/O plot).",
        "- Process mode sends small items in chunks sized by their measured duration. A "
        "sized input (here `range(n)`) goes through the engine's bulk lane: runs of items "
        "and outcomes by position, no object per item (see the process-mode page); a "
        "generator goes one item at a time. The hand-tuned `ProcessPoolExecutor` sends "
        "the whole batch in 8 messages and cannot report per item, retry, time out or "
        "survive a crash; poolkit does all of these per item, which is what its extra "
        "microseconds per item pay for.",
        "- A cold `run_all` in process mode includes starting the workers; a warm "
        "`poolkit.runner` does not.",
        "- The serial baseline of the CPU tables runs in the benchmark's own process, "
        "beside its idle pools' threads; a worker process runs alone, so one worker can "
        "beat serial slightly and 2 workers can show a little over 2.00x on 2 cores.",
        "- This machine is a VM whose cores change speed from one second to the next: "
        "the same fixed work takes 1.8 s in one round and 2.7 s in another. The CPU "
        "table's first row runs the same work in two processes that never talk, and "
        "moves between item sizes by as much as the pools do: differences of 0.1x "
        "between the CPU rows are that noise, not the pools.",
    ]
    text = header + cold + overhead + cpu + cpu_workers + recovery + memory + bigdata
    text += io_lines + dask + notes + plots(overhead, cpu_points, io_points)
    minutes = (time.perf_counter() - started) / 60
    body = "\n".join(text).replace("{minutes}", f"{minutes:.0f}")
    (DOCS / "benchmarks.md").write_text(body + "\n")
    print(f"\nwrote {DOCS / 'benchmarks.md'} in {minutes:.1f} min")


if __name__ == "__main__":
    replot() if sys.argv[1:] == ["--replot"] else main()
