"""The downloader against a real HTTP server on 127.0.0.1 started by the tests."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit
from poolkit.download import (
    HTTPStatusError,
    Page,
    TooLarge,
    TooManyRedirects,
    UnsafeURL,
    content_disposition_name,
    download_all,
    file_name_for,
    sanitize,
)
from poolkit.download._server import LocalServer, local_server


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """One local server for the module."""
    with local_server() as running:
        yield running


def _one(server: LocalServer, path: str, **options: Any) -> poolkit.Ok[Page] | poolkit.Err:
    options.setdefault("retries", 0)
    options.setdefault("timeout", 5)
    [result] = download_all([server.url(path)], **options)
    return result


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_page_in_memory_and_on_disk(server: LocalServer, tmp_path: Path) -> None:
    """A page is kept in memory without dest, and saved under a safe name with it."""
    result = _one(server, "/wiki/PHP")
    page = result.unwrap()
    assert page.status == 200
    assert page.content is not None
    assert page.bytes == len(page.content)
    saved = _one(server, "/wiki/PHP", dest=tmp_path).unwrap()
    assert saved.path is not None
    assert saved.path.parent == tmp_path.resolve()
    assert saved.path.read_bytes() == page.content
    assert _files(tmp_path) == [saved.path.name]


@pytest.mark.parametrize("mode", ["serial", "thread", "process", "async"])
def test_every_mode_downloads_the_demo(server: LocalServer, mode: str, tmp_path: Path) -> None:
    """Each mode downloads the 15 pages; distinct URLs land in distinct files."""
    urls = server.demo_urls(15)
    results = download_all(urls, mode=mode, workers=4, dest=tmp_path, retries=0)
    assert results.all_ok, results.errs
    assert len(set(_files(tmp_path))) == 15


def test_existing_files_are_kept_unless_overwrite(server: LocalServer, tmp_path: Path) -> None:
    """A file already there is kept and its URL skipped; --overwrite replaces it."""
    first = _one(server, "/wiki/PHP", dest=tmp_path).unwrap()
    assert first.path is not None
    first.path.write_bytes(b"mine")
    again = _one(server, "/wiki/PHP", dest=tmp_path).unwrap()
    assert again.skipped
    assert first.path.read_bytes() == b"mine"
    replaced = _one(server, "/wiki/PHP", dest=tmp_path, overwrite=True).unwrap()
    assert not replaced.skipped
    assert first.path.read_bytes() != b"mine"


def test_404_is_not_retried(server: LocalServer) -> None:
    """4xx other than 429 fails at once with status, reason and URL."""
    result = _one(server, "/status/404", retries=3)
    assert isinstance(result, poolkit.Err)
    assert isinstance(result.error, HTTPStatusError)
    assert result.attempts == 1
    assert "404" in str(result.error)
    assert "/status/404" in str(result.error)


@pytest.mark.parametrize("code", [429, 500, 503])
def test_transient_statuses_are_retried(server: LocalServer, code: int) -> None:
    """429 and 5xx are retried and then succeed."""
    result = _one(server, f"/flaky/s{code}/2/{code}?retry_after=0", retries=3)
    assert result.is_ok()
    assert result.attempts == 3


def test_retry_after_is_honoured_up_to_its_cap(server: LocalServer) -> None:
    """Retry-After seconds are waited (1 s here) before the next attempt."""
    began = time.monotonic()
    result = _one(server, "/flaky/ra/1/503?retry_after=1", retries=1)
    assert result.is_ok()
    assert time.monotonic() - began >= 1.0
    from poolkit.download._http import retry_after_seconds

    assert retry_after_seconds("3600", cap=60) == 60
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", cap=60) == 0.0


def test_status_without_retry_after_uses_backoff(server: LocalServer) -> None:
    """A 500 with no Retry-After gives up after its retries, each attempt counted."""
    result = _one(server, "/status/500", retries=2)
    assert isinstance(result, poolkit.Err)
    assert result.attempts == 3


def test_slow_server_times_out(server: LocalServer) -> None:
    """A server slower than the timeout: a timeout error, retried as transient."""
    began = time.monotonic()
    result = _one(server, "/delay/5", timeout=0.5, retries=1)
    assert isinstance(result, poolkit.Err)
    assert result.attempts == 2
    assert poolkit.download.is_transient(result.error)
    assert time.monotonic() - began < 4


def test_dropped_connection_is_transient(server: LocalServer) -> None:
    """A connection closed without an answer is an error worth retrying."""
    result = _one(server, "/drop", retries=1)
    assert isinstance(result, poolkit.Err)
    assert result.attempts == 2


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_redirects(server: LocalServer, mode: str) -> None:
    """http redirects are followed; file:// and loops are refused."""
    good = _one(server, f"/redirect?to={server.url('/wiki/PHP')}", mode=mode).unwrap()
    assert good.final_url.endswith("/wiki/PHP")
    assert good.status == 200
    bad = _one(server, "/redirect?to=file:///etc/passwd", mode=mode)
    assert isinstance(bad, poolkit.Err)
    assert isinstance(bad.error, UnsafeURL)
    loop = _one(server, "/loop", mode=mode)
    assert isinstance(loop, poolkit.Err)
    assert isinstance(loop.error, TooManyRedirects)


def test_only_http_and_https(tmp_path: Path) -> None:
    """Other schemes are refused before any connection."""
    results = download_all(["file:///etc/passwd", "ftp://x/y", "gopher://x"], retries=0)
    assert all(isinstance(r.error, UnsafeURL) for r in results.errs)
    assert len(results.errs) == 3


@pytest.mark.parametrize("mode", ["thread", "async"])
@pytest.mark.parametrize("path", ["/bytes/5000", "/gzip/5000", "/stall?seconds=0"])
def test_size_limit_while_streaming(
    server: LocalServer, tmp_path: Path, mode: str, path: str
) -> None:
    """A body over max_bytes (declared, streamed or decompressed) fails; no file is left."""
    result = _one(server, path, max_bytes=999, dest=tmp_path, mode=mode)
    assert isinstance(result, poolkit.Err), result
    assert isinstance(result.error, TooLarge), result
    assert _files(tmp_path) == []


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_wrong_content_length_leaves_no_file(
    server: LocalServer, tmp_path: Path, mode: str
) -> None:
    """A body shorter than its Content-Length is an error; no partial file remains."""
    result = _one(server, "/short", dest=tmp_path, mode=mode)
    assert isinstance(result, poolkit.Err)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("mode", ["thread", "process", "async"])
def test_stall_mid_body_times_out_without_a_file(
    server: LocalServer, tmp_path: Path, mode: str
) -> None:
    """A server that stalls mid-body: a timeout error, and no partial file."""
    result = _one(server, "/stall?seconds=5", dest=tmp_path, timeout=0.5, mode=mode)
    assert isinstance(result, poolkit.Err)
    assert _files(tmp_path) == []


def test_credentials_do_not_follow_to_another_host(server: LocalServer) -> None:
    """Authorization and Cookie go to the same host only."""
    same = server.url("/echo-headers")
    other = f"http://localhost:{server.port}/echo-headers"
    secret = {"Authorization": "Bearer s3cret", "Cookie": "session=1"}
    page = _one(server, f"/redirect?to={same}", headers=secret).unwrap()
    assert json.loads(page.content or b"{}").get("Authorization") == "Bearer s3cret"
    page = _one(server, f"/redirect?to={other}", headers=secret).unwrap()
    echoed = json.loads(page.content or b"{}")
    assert "Authorization" not in echoed
    assert "Cookie" not in echoed
    assert echoed["User-Agent"].startswith("poolkit-downloader/")


def test_content_disposition_is_sanitised(server: LocalServer, tmp_path: Path) -> None:
    """A Content-Disposition name is used only after sanitising: it cannot leave dest."""
    page = _one(server, "/cd/..%2F..%2Fevil.sh", dest=tmp_path).unwrap()
    assert page.path is not None
    assert page.path.parent == tmp_path.resolve()
    # the server's name, made collision-proof like ours (a short hash of the URL)
    assert page.path.name.startswith("evil-")
    assert page.path.name.endswith(".sh")
    assert content_disposition_name('attachment; filename="CON"') == "_CON"


@given(st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=8, unique=True))
def test_hostile_paths_stay_inside_and_unique(segments: list[str]) -> None:
    """Any URL path gives a safe, unique file name inside dest."""
    from urllib.parse import quote

    urls = [f"http://h/{quote(s, safe='/?=&.:')}" for s in segments]
    names = [file_name_for(u) for u in urls]
    assert len(set(names)) == len(set(urls))
    root = Path("/tmp/poolkit-out").resolve()
    for name in names:
        assert "/" not in name
        assert "\\" not in name
        assert name not in (".", "..")
        assert (root / name).resolve().parent == root
        assert sanitize(name) == name


def test_credentials_never_printed(server: LocalServer) -> None:
    """Summaries and errors show URLs without their credentials."""
    url = f"http://user:hunter2@127.0.0.1:{server.port}/status/404"
    [result] = download_all([url], retries=0)
    assert "hunter2" not in str(result.error)


def test_bad_arguments() -> None:
    """Bad downloader arguments fail before any request."""
    with pytest.raises(ValueError, match="retries=-1"):
        download_all(["http://x"], retries=-1)
    with pytest.raises(ValueError, match="mode='dask'"):
        download_all(["http://x"], mode="dask")
    with poolkit.runner("thread", workers=2) as pool, pytest.raises(TypeError, match="workers="):
        download_all(["http://x"], mode=pool, workers=4)


def test_a_kept_runner_downloads_without_starting_threads(server: LocalServer) -> None:
    """``mode=`` takes a Runner: the second call runs on the threads the first one
    started (and their sessions), instead of starting its own."""

    def workers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("poolkit")}

    before = workers()
    urls = server.demo_urls(15)
    with poolkit.runner("thread", workers=8) as pool:
        first = download_all(urls, mode=pool, retries=0)
        assert first.all_ok, first.errs
        kept = workers() - before
        assert kept
        second = download_all(urls, mode=pool, retries=0)
        assert second.all_ok, second.errs
        assert [p.bytes for p in second.values] == [p.bytes for p in first.values]
        assert workers() - before == kept


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "poolkit"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "poolkit"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout)


def test_cli_download_exit_codes_and_json(server: LocalServer, tmp_path: Path) -> None:
    """The console script: JSON per URL; exit 0 all ok, 1 some failed, 2 bad usage."""
    ok = _cli(
        "download", server.url("/wiki/PHP"), "--out", str(tmp_path), "--json", "--retries", "0"
    )
    assert ok.returncode == 0, ok.stderr
    [record] = [json.loads(line) for line in ok.stdout.splitlines()]
    assert record["ok"]
    assert record["status"] == 200
    assert Path(record["path"]).exists()

    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server.url('/wiki/PHP')}\n# a comment\n{server.url('/status/404')}\n")
    some = _cli("download", "-i", str(listing), "--retries", "0")
    assert some.returncode == 1
    assert "1 ok, 1 failed of 2 URLs" in some.stdout
    assert "404" in some.stdout

    assert _cli("download").returncode == 2
    assert _cli("download", "--workers", "0", "http://x").returncode == 2
    assert _cli("frobnicate").returncode == 2


def test_cli_interrupt_leaves_no_partial_file(server: LocalServer, tmp_path: Path) -> None:
    """Ctrl-C stops promptly, says so, and leaves no partial file."""
    import signal

    script = Path(sys.executable).parent / "poolkit"
    with subprocess.Popen(
        [str(script), "download", server.url("/stall?seconds=30"), "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        deadline = time.monotonic() + 10
        while not any(tmp_path.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)  # polling for the partial file to appear, bounded
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=10)
    assert time.monotonic() - sent < 3
    assert child.returncode == 130
    assert "interrupted" in err
    assert _files(tmp_path) == []


def test_demo_runs_offline() -> None:
    """poolkit demo prints the comparison for every mode."""
    done = _cli("demo", "--latency", "0.05", "--sites", "6")
    assert done.returncode == 0, done.stderr
    for mode in ("serial", "thread", "process", "async"):
        assert f"{mode}: Download 6 sites in" in done.stdout


def test_python_dash_m(server: LocalServer) -> None:
    """python -m poolkit works like the console script."""
    done = subprocess.run(
        [sys.executable, "-m", "poolkit", "download", "--json", "--quiet", server.url("/wiki/PHP")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert json.loads(done.stdout)["ok"]


def test_credentials_rules_for_redirects() -> None:
    """Credentials follow a redirect only within one origin (scheme, host and port)."""
    from poolkit.download._http import carry_credentials

    assert carry_credentials("https://a.example/x", "https://a.example/y")
    assert carry_credentials("https://a.example/x", "https://A.EXAMPLE:443/y")
    assert not carry_credentials("http://a.example/x", "https://A.EXAMPLE/y")
    assert not carry_credentials("http://a.example:8000/x", "http://a.example:8001/y")
    assert not carry_credentials("https://a.example/x", "http://a.example/y")
    assert not carry_credentials("https://a.example/x", "https://b.example/y")


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_a_trickling_body_hits_the_attempt_limit_alike_in_every_mode(
    server: LocalServer, mode: str
) -> None:
    """A byte every 0.2 s is never idle for the 0.5 s read timeout: the whole-attempt
    limit (timeout + 1 s) ends it, as TaskTimeout in thread mode and in async mode
    (where the fetcher holds the limit itself, so URLs run in lanes)."""
    began = time.monotonic()
    result = _one(server, "/trickle?seconds=6", timeout=0.5, retries=0, mode=mode)
    assert isinstance(result, poolkit.Err)
    assert isinstance(result.error, poolkit.TaskTimeout), repr(result.error)
    assert result.error.timeout == 1.5
    assert result.attempts == 1
    assert time.monotonic() - began < 5


def test_a_client_that_hangs_up_leaves_no_traceback(
    server: LocalServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """A client reset mid-request (a download stopped by Ctrl-C) is not the local
    server's error: no traceback on stderr (socketserver printed one), and the server
    still serves. Any other error still gets its traceback."""
    import socket
    import struct

    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(b"GET /wiki/x HTTP/1.1\r\nHost: a")  # the request never ends
            # close with a reset (RST), not a FIN: linger on, for 0 seconds
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert download_all(server.demo_urls(1))[0].is_ok()
    httpd = server._httpd
    try:  # what the handler thread of such a connection meets, deterministically
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        httpd.handle_error(None, ("127.0.0.1", 1))
    assert "Traceback" not in capfd.readouterr().err
    try:
        raise ValueError("a bug of the server's")
    except ValueError:
        httpd.handle_error(None, ("127.0.0.1", 1))
    assert "ValueError: a bug of the server's" in capfd.readouterr().err
