"""The ``poolkit`` command: ``poolkit download ...`` and ``poolkit demo``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
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


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def _size(text: str) -> int:
    """``10M``, ``1G``, ``512K`` or a number of bytes."""
    number = text.strip().upper().rstrip()
    digits = number.rstrip("KMGIB")
    unit = number[len(digits) :]
    try:
        value = int(float(digits) * _UNITS[unit])
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"expected a size such as 500K, 10M or 1G, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a size > 0, got {text!r}")
    return value


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every default that says something (not "None", "[]" or "False")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, [], False) or "default:" in text:
            return text
        return super()._get_help_string(action) or text


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="poolkit", description="Run work in parallel, safely.", formatter_class=_Help
    )
    parser.add_argument("--version", action="version", version=f"poolkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    down = commands.add_parser(
        "download",
        help="download URLs safely, in parallel",
        description="Download URLs safely, in parallel. Exit status: 0 when every URL "
        "succeeded, 1 when some failed, 2 for bad usage, 130 when interrupted.",
        formatter_class=_Help,
    )
    down.add_argument("urls", nargs="*", metavar="URL", help="URLs to download")
    down.add_argument(
        "-i",
        "--input",
        metavar="FILE",
        help="read URLs from FILE, one per line; blank lines and # comments are skipped "
        "('-' for standard input)",
    )
    down.add_argument(
        "--mode",
        default="thread",
        choices=["serial", "thread", "process", "async"],
        help="how downloads run at once (async: aiohttp when installed)",
    )
    down.add_argument(
        "-j",
        "--workers",
        type=_positive(int),
        help="downloads at once (default: 16 threads, one process per CPU, 64 async)",
    )
    down.add_argument("--retries", type=int, default=3, help="retries of transient failures")
    down.add_argument("--timeout", type=_positive(float), default=30.0, help="seconds per attempt")
    down.add_argument("--deadline", type=_positive(float), help="seconds for the whole batch")
    down.add_argument("--rate", type=_positive(float), help="at most this many requests per second")
    down.add_argument(
        "--max-bytes", type=_size, default="100M", help="largest body accepted (500K, 10M, 1G)"
    )
    down.add_argument(
        "-H",
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra request header (repeatable)",
    )
    down.add_argument(
        "-o", "--out", metavar="DIR", help="save files into DIR (default: count, do not save)"
    )
    down.add_argument(
        "-O",
        "--stdout",
        action="store_true",
        help="write the body of a single URL to standard output (as curl does)",
    )
    down.add_argument("--overwrite", action="store_true", help="replace files already in DIR")
    down.add_argument("--insecure", action="store_true", help="turn TLS verification off")
    down.add_argument("--json", action="store_true", help="one JSON object per URL on stdout")
    down.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    down.add_argument("-v", "--verbose", action="store_true", help="show each retry on stderr")

    demo = commands.add_parser(
        "demo",
        help="the offline 'download 15 sites' comparison",
        description="Download 15 pages from a local server in every mode.",
        formatter_class=_Help,
    )
    demo.add_argument("--sites", type=_positive(int), default=15, help="pages to download")
    demo.add_argument("--latency", type=_not_negative, default=0.25, help="server latency, s")
    demo.add_argument("--workers", type=_positive(int), default=8, help="workers per mode")
    demo.add_argument(
        "--timeout",
        type=_positive(float),
        help="seconds per request (default: 4 x latency, at least 1 s)",
    )
    demo.add_argument(
        "--modes", default="serial,thread,process,async", help="comma-separated modes"
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
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command_parser = commands.choices[args.command]
    if args.command == "demo":
        return _demo(command_parser, args)
    return _download(command_parser, args)


def _demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .download._demo import run_demo

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ("serial", "thread", "process", "async")]
    if unknown or not modes:
        parser.error(f"--modes: unknown mode(s) {', '.join(unknown) or '(none)'}")
    all_ok = run_demo(
        sites=args.sites,
        latency=args.latency,
        workers=args.workers,
        modes=modes,
        faults=args.faults,
        timeout=args.timeout,
        out=sys.stdout,
    )
    return EXIT_OK if all_ok else EXIT_SOME_FAILED


def _read_urls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    urls = list(args.urls)
    if args.input:
        try:
            if args.input == "-":
                lines = sys.stdin.read().lstrip("\ufeff").splitlines()
            else:
                with open(args.input, encoding="utf-8-sig") as handle:  # a BOM is not a URL
                    lines = handle.read().splitlines()
        except OSError as error:
            parser.error(f"-i {args.input}: {error.strerror}")
        except UnicodeDecodeError:
            parser.error(f"-i {args.input}: not a UTF-8 text file")
        stripped = (line.strip() for line in lines)
        urls += [line for line in stripped if line and not line.startswith("#")]
    if not urls:
        parser.error("no URL given: pass URLs or -i FILE")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    if args.stdout and (len(urls) != 1 or args.out or args.json):
        parser.error("-O/--stdout takes exactly one URL, and no --out or --json")
    return urls


def _check_out(parser: argparse.ArgumentParser, out: str | None) -> None:
    """--out must be a folder we can write (created if missing): checked before any download."""
    from .download._files import writable_folder

    if out is not None:
        try:
            writable_folder(Path(out))
        except ValueError as error:
            parser.error(f"--out {error}")


def _download(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .download import download_all, redact

    urls = _read_urls(parser, args)
    _check_out(parser, args.out)
    if args.mode == "async" and not _has_aiohttp():
        print(
            "poolkit: aiohttp is not installed (pip install 'poolkit[async]'); "
            "--mode async downloads with requests on threads",
            file=sys.stderr,
        )
    if args.verbose:
        handler = _AboveTheBar()
        handler.setFormatter(logging.Formatter("poolkit: %(message)s"))
        logging.getLogger("poolkit").addHandler(handler)
        logging.getLogger("poolkit").setLevel(logging.WARNING)
    finished: list[Ok[Any] | Err] = []
    began = time.monotonic()

    def on_result(result: Ok[Any] | Err) -> None:
        finished.append(result)
        if args.json:
            print(json.dumps(_record(result, redact, args.timeout)), flush=True)

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
            headers=dict(args.header),
            progress=not (args.quiet or args.stdout),
            on_result=on_result,
            keep_content=args.stdout,
        )
    except KeyboardInterrupt:
        print("\ninterrupted: no partial file was left behind", file=sys.stderr)
        if not args.quiet:
            done = Results(sorted(finished, key=lambda r: r.index))
            done.wall_time = time.monotonic() - began
            _summary(done, redact, sys.stderr, total=len(urls), timeout=args.timeout)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    if args.stdout and results.all_ok:
        sys.stdout.buffer.write(results[0].unwrap().content or b"")
        sys.stdout.flush()
    if not args.quiet:
        out = sys.stderr if (args.json or args.stdout) else sys.stdout
        _summary(results, redact, out, total=len(urls), timeout=args.timeout)
    return EXIT_OK if results.all_ok else EXIT_SOME_FAILED


class _AboveTheBar(logging.Handler):
    """Log lines written above the progress bar (tqdm.write), so the bar stays intact."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _has_aiohttp() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def _reason(error: BaseException, timeout: float) -> str:
    """What went wrong, in the user's terms (the limit they set, not poolkit's slack)."""
    from . import TaskTimeout

    if isinstance(error, TaskTimeout):
        return f"timed out after {timeout:g} s"
    return f"{type(error).__name__}: {error}"


def _record(result: Ok[Any] | Err, redact: Any, timeout: float) -> dict[str, Any]:
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
        record.update(error=type(result.error).__name__, reason=_reason(result.error, timeout))
    return record


def _size_text(size: float) -> str:
    """Bytes in the unit that fits: B, KB, MB, GB.

    Examples:
        >>> _size_text(512), _size_text(2048), _size_text(3_500_000)
        ('512 B', '2.0 KB', '3.5 MB')
    """
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def _summary(
    results: Results[Any], redact: Any, out: TextIO, *, total: int, timeout: float
) -> None:
    summary = results.summary()
    size = sum(r.value.bytes for r in results if isinstance(r, Ok))
    print(
        f"\n{summary.ok} ok, {summary.err} failed of {total} URLs, "
        f"{_size_text(size)} in {results.wall_time:.2f} s",
        file=out,
    )
    if summary.errors_by_type:
        print(
            "errors: " + ", ".join(f"{k} {v}" for k, v in summary.errors_by_type.items()), file=out
        )
    for failed in results.errs:
        url = redact(str(failed.item))
        reason = _reason(failed.error, timeout).replace(f"{url}: ", "").replace(f" for {url}", "")
        tries = f"{failed.attempts} attempt" + ("s" if failed.attempts != 1 else "")
        print(f"  FAILED {url}: {reason} ({tries})", file=out)
