"""The ``poolkit`` command: ``poolkit download ...`` and ``poolkit demo``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ._results import Err, Ok, Results

__all__ = ["main"]

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poolkit", description="Run work in parallel, safely.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    down = commands.add_parser(
        "download",
        help="download URLs safely, in parallel",
        description="Download URLs safely, in parallel.",
    )
    down.add_argument("urls", nargs="*", metavar="URL", help="URLs to download")
    down.add_argument(
        "-i",
        "--input",
        metavar="FILE",
        help="read URLs from FILE, one per line ('-' for standard input)",
    )
    down.add_argument("--mode", default="thread", choices=["serial", "thread", "process", "async"])
    down.add_argument("--workers", type=_positive(int), help="downloads at once")
    down.add_argument(
        "--retries", type=int, default=3, help="retries of transient failures (default 3)"
    )
    down.add_argument("--timeout", type=_positive(float), default=30.0, help="seconds per attempt")
    down.add_argument("--deadline", type=_positive(float), help="seconds for the whole batch")
    down.add_argument("--rate", type=_positive(float), help="at most this many requests per second")
    down.add_argument(
        "--max-bytes",
        type=_positive(int),
        default=100 * 2**20,
        help="largest body accepted (default 100 MB)",
    )
    down.add_argument("--out", metavar="DIR", help="save files into DIR (default: do not save)")
    down.add_argument("--overwrite", action="store_true", help="replace files already in DIR")
    down.add_argument("--insecure", action="store_true", help="turn TLS verification off")
    down.add_argument("--json", action="store_true", help="one JSON object per URL on stdout")
    down.add_argument("--quiet", action="store_true", help="no progress bar and no summary")

    demo = commands.add_parser(
        "demo",
        help="the offline 'download 15 sites' comparison",
        description="Download 15 pages from a local server in every mode.",
    )
    demo.add_argument("--sites", type=_positive(int), default=15)
    demo.add_argument("--latency", type=float, default=0.25, help="server latency in seconds")
    demo.add_argument("--workers", type=_positive(int), default=8)
    demo.add_argument(
        "--modes",
        default="serial,thread,process,async",
        help="comma-separated modes (default: all four)",
    )
    demo.add_argument(
        "--faults",
        action="store_true",
        help="a 503 that succeeds on retry and a page slower than the timeout",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(parser, args)
    return _download(parser, args)


def _demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .download._demo import run_demo

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ("serial", "thread", "process", "async")]
    if unknown or not modes:
        parser.error(f"--modes: unknown mode(s) {', '.join(unknown) or '(none)'}")
    run_demo(
        sites=args.sites,
        latency=args.latency,
        workers=args.workers,
        modes=modes,
        faults=args.faults,
        out=sys.stdout,
    )
    return EXIT_OK


def _read_urls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    urls = list(args.urls)
    if args.input:
        try:
            handle = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            parser.error(f"-i {args.input}: {error.strerror}")
        with handle:
            urls += [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    if not urls:
        parser.error("no URL given: pass URLs or -i FILE")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    return urls


def _download(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .download import download_all, redact

    urls = _read_urls(parser, args)
    finished: list[Ok[Any] | Err] = []

    def on_result(result: Ok[Any] | Err) -> None:
        finished.append(result)
        if args.json:
            print(json.dumps(_record(result, redact)), flush=True)

    try:
        results = download_all(
            urls,
            mode=args.mode,
            workers=args.workers,
            dest=args.out,
            retries=args.retries,
            timeout=args.timeout,
            deadline=args.deadline,
            rate=args.rate,
            max_bytes=args.max_bytes,
            overwrite=args.overwrite,
            insecure=args.insecure,
            progress=not args.quiet,
            on_result=on_result,
        )
    except KeyboardInterrupt:
        print("\ninterrupted: no partial file was left behind", file=sys.stderr)
        if not args.quiet:
            _summary(
                Results(sorted(finished, key=lambda r: r.index)),
                redact,
                sys.stderr,
                total=len(urls),
            )
        return EXIT_INTERRUPTED
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    if not args.quiet:
        _summary(results, redact, sys.stderr if args.json else sys.stdout, total=len(urls))
    return EXIT_OK if results.all_ok else EXIT_SOME_FAILED


def _record(result: Ok[Any] | Err, redact: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "url": redact(result.item),
        "ok": isinstance(result, Ok),
        "attempts": result.attempts,
        "elapsed": round(result.elapsed, 4),
    }
    if isinstance(result, Ok):
        page = result.value
        record.update(
            final_url=redact(page.final_url),
            status=page.status,
            bytes=page.bytes,
            path=str(page.path) if page.path else None,
            skipped=page.skipped,
        )
    else:
        record.update(error=type(result.error).__name__, reason=str(result.error))
    return record


def _summary(results: Results[Any], redact: Any, out: TextIO, *, total: int) -> None:
    summary = results.summary()
    size = sum(r.value.bytes for r in results if isinstance(r, Ok))
    print(
        f"\n{summary.ok} ok, {summary.err} failed of {total} URLs, "
        f"{size / 1e6:.1f} MB in {results.wall_time:.2f} s",
        file=out,
    )
    if summary.errors_by_type:
        print(
            "errors: " + ", ".join(f"{k} {v}" for k, v in summary.errors_by_type.items()), file=out
        )
    for failed in results.errs:
        print(
            f"  FAILED {redact(str(failed.item))}: {failed.error} ({failed.attempts} attempt(s))",
            file=out,
        )
