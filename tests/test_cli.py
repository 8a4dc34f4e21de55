"""The downloader and the `poolkit` command on bad input, as curl and wget users expect.

Each case runs the real CLI in a subprocess (or download_all) against a local server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poolkit.download import (
    BadURL,
    ConnectFailed,
    FetchError,
    HTTPStatusError,
    ReadTimedOut,
    download_all,
)
from poolkit.download._http import retry_after_seconds
from poolkit.download._server import LocalServer, local_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with local_server() as running:
        yield running


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    """Run `poolkit ARGS` and return the completed process (text)."""
    return subprocess.run(
        [sys.executable, "-m", "poolkit", *args],
        capture_output=True,
        text=True,
        timeout=100,
        input=stdin,
        env={**os.environ, **(env or {})},
    )


def test_same_server_file_name_for_two_urls_keeps_both(server: LocalServer, tmp_path: Path) -> None:
    """Two URLs whose server sends the same Content-Disposition name: both bodies saved."""
    urls = [server.url("/cd/report.txt?body=one"), server.url("/cd/report.txt?body=two")]
    done = cli("download", "--out", str(tmp_path), "--json", "-q", *urls)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["skipped"] for r in records] == [False, False]
    bodies = sorted(p.read_text() for p in tmp_path.iterdir())
    assert bodies == ["one\n", "two\n"]


def test_without_out_bodies_are_not_kept(server: LocalServer) -> None:
    """keep_content=False counts bodies and keeps none (what the CLI does without --out)."""
    (result,) = download_all([server.url("/bytes/5000")], keep_content=False, retries=0)
    page = result.unwrap()
    assert page.bytes == 5000
    assert page.content is None


def test_stdout_writes_the_body(server: LocalServer) -> None:
    """-O/--stdout writes a single URL's body to standard output, as curl does."""
    done = cli("download", "-O", server.url("/bytes/7"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "x" * 7


def test_demo_bad_options_are_usage_errors() -> None:
    """`poolkit demo --latency -1` is bad usage: exit 2 with the demo's own usage line."""
    done = cli("demo", "--latency", "-1")
    assert done.returncode == 2
    assert "usage: poolkit demo" in done.stderr


@pytest.mark.parametrize("mode", ["thread", "async", "process"])
def test_credentials_do_not_follow_to_another_port(server: LocalServer, mode: str) -> None:
    """Authorization and Cookie are dropped on a redirect to another port of the same host."""
    with local_server() as other:
        target = other.url("/echo-headers")
        (result,) = download_all(
            [server.url(f"/redirect?to={target}")],
            mode=mode,
            headers={"Authorization": "Bearer secret", "Cookie": "a=b", "X-Keep": "1"},
            retries=0,
        )
    seen = json.loads(result.unwrap().content or b"{}")
    assert "Authorization" not in seen
    assert "Cookie" not in seen
    assert seen.get("X-Keep") == "1"


@pytest.mark.parametrize("mode", ["thread", "serial"])
def test_an_abandoned_transfer_stops_writing(
    server: LocalServer, tmp_path: Path, mode: str
) -> None:
    """A transfer whose attempt timed out commits nothing later and leaves no .part file."""
    (result,) = download_all(
        [server.url("/trickle?seconds=4")], mode=mode, dest=tmp_path, timeout=1.0, retries=0
    )
    assert result.is_err()
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and list(tmp_path.iterdir()):
        time.sleep(0.1)  # observing the folder, not synchronizing
    time.sleep(4)  # the server trickles for 4 s: nothing may appear meanwhile
    assert list(tmp_path.iterdir()) == []


def test_long_non_ascii_names_are_cut_by_bytes(server: LocalServer, tmp_path: Path) -> None:
    """A 200-character non-ASCII name (400+ bytes) is saved under a name of <= 255 bytes."""
    name = "é" * 200 + ".txt"
    for path in (f"/cd/{name}", f"/wiki/{name}"):
        (result,) = download_all([server.url(path)], dest=tmp_path, retries=0)
        if path.startswith("/wiki/"):
            assert isinstance(result.error, HTTPStatusError)  # a 404, not "name too long"
            continue
        saved = result.unwrap().path
        assert saved is not None
        assert len(saved.name.encode()) <= 255


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_protocol_edges_are_the_same_in_every_mode(server: LocalServer, mode: str) -> None:
    """A status below 100 is refused the same way; `gzip, gzip` is decoded twice."""
    low, double = download_all(
        [server.url("/status/99"), server.url("/gzip2/1000")], mode=mode, retries=0
    )
    assert isinstance(low.error, ConnectFailed)
    assert "status" in str(low.error)
    assert double.unwrap().content == b"z" * 1000


def test_malformed_url_is_its_own_failure_not_a_traceback() -> None:
    """`poolkit download "http://[::1"`: a FAILED line and exit 1; --json an ok:false object."""
    done = cli("download", "http://[::1")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert "FAILED http://[::1" in done.stdout
    as_json = cli("download", "--json", "-q", "http://[::1")
    assert as_json.returncode == 1
    assert "Traceback" not in as_json.stderr
    record = json.loads(as_json.stdout)
    assert record["ok"] is False
    assert record["error"] == "BadURL"


def test_bad_out_is_checked_before_any_download(server: LocalServer, tmp_path: Path) -> None:
    """--out that is a file, cannot be created or is read-only: one message, exit 2."""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    url = server.url("/wiki/PHP")
    try:
        for out in (str(a_file), "/proc/poolkit-cannot", str(read_only)):
            done = cli("download", "--out", out, url)
            if out == str(read_only) and os.geteuid() == 0:
                continue  # root writes anywhere: nothing to refuse
            assert done.returncode == 2, (out, done.stderr)
            assert "Traceback" not in done.stderr
            assert "usage: poolkit download" in done.stderr
    finally:
        read_only.chmod(0o700)


def test_input_file_with_bom_comments_and_blank_lines(server: LocalServer, tmp_path: Path) -> None:
    """-i skips blank lines and # comments and ignores a UTF-8 BOM (as wget -i does)."""
    listing = tmp_path / "urls.txt"
    listing.write_text(
        "\ufeff" + server.url("/bytes/3") + "\n\n# a comment\n  \n" + server.url("/bytes/4") + "\n",
        encoding="utf-8",
    )
    done = cli("download", "-q", "--json", "-i", str(listing))
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(json.loads(line)["bytes"] for line in done.stdout.splitlines()) == [3, 4]


@pytest.mark.parametrize("mode", ["serial", "thread", "process", "async"])
def test_the_same_error_types_in_every_mode(server: LocalServer, mode: str) -> None:
    """Refused connection, read timeout, bad URL: the downloader's own types, cause kept."""
    refused = "http://127.0.0.1:9/"
    results = download_all(
        [refused, server.url("/stall?seconds=5"), "http://[::1"],
        mode=mode,
        retries=0,
        timeout=1.0,
    )
    kinds = [type(r.error) for r in results]
    assert kinds == [ConnectFailed, ReadTimedOut, BadURL]
    assert all(isinstance(r.error, FetchError) for r in results)
    assert "127.0.0.1:9" in str(results[0].error)
    assert "None:" not in str(results[1].error)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_retry_after_asctime_is_utc_whatever_the_local_zone(zone: str) -> None:
    """An asctime Retry-After (no zone) is UTC: the same wait in every TZ."""
    code = (
        "import time, email.utils\n"
        "from poolkit.download._http import retry_after_seconds\n"
        "when = time.gmtime(time.time() + 30)\n"
        "value = time.strftime('%a %b %d %H:%M:%S %Y', when)\n"
        "print(retry_after_seconds(value, cap=120))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TZ": zone},
    )
    assert 25 <= float(done.stdout) <= 31, done.stdout + done.stderr


def test_garbage_retry_after_is_ignored_and_the_status_kept(server: LocalServer) -> None:
    """Retry-After: ² is ignored (usual backoff): the 503 is kept and retried."""
    assert retry_after_seconds("\u00b2", cap=60) is None
    assert retry_after_seconds("-5", cap=60) is None
    (result,) = download_all(
        [server.url("/flaky/garbage/1/503?retry_after=%C2%B2")], retries=2, max_backoff=0.05
    )
    assert result.unwrap().status == 200
    assert result.attempts == 2


def test_version_headers_sizes_and_help(server: LocalServer) -> None:
    """--version; -H reaches the server; --max-bytes 1K; --help shows the defaults."""
    assert cli("--version").stdout.startswith("poolkit ")
    echoed = cli("download", "-O", "-H", "X-Token: abc", server.url("/echo-headers"))
    assert json.loads(echoed.stdout)["X-Token"] == "abc"
    limited = cli("download", "--max-bytes", "1K", "-q", "--json", server.url("/bytes/5000"))
    assert json.loads(limited.stdout)["error"] == "TooLarge"
    helped = cli("download", "--help").stdout
    assert "default: 30.0" in helped
    assert "16 threads" in helped
    assert "default: None" not in helped  # said of options without a default: noise
    assert "(default: thread)" in helped


def test_messages_say_what_the_user_set(server: LocalServer, tmp_path: Path) -> None:
    """--timeout 1 reports 1 s; one attempt is '1 attempt'; small sizes in B or KB;
    an IP host's root page is index-<hash>.html; files follow the umask."""
    done = cli("download", "--timeout", "1", "--retries", "0", server.url("/trickle?seconds=5"))
    assert "(1 attempt)" in done.stdout
    assert "3.0 s" not in done.stdout
    small = cli("download", server.url("/bytes/2048"))
    assert "2.0 KB" in small.stdout
    saved = cli("download", "--out", str(tmp_path), server.url("/"))
    assert saved.returncode in (0, 1)
    names = [p.name for p in tmp_path.iterdir()]
    assert all(n.startswith("index-") and n.endswith(".html") for n in names), names
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_ctrl_c_leaves_no_partial_file(server: LocalServer, tmp_path: Path, mode: str) -> None:
    """SIGINT mid-download (workers own their .part files): nothing partial stays."""

    urls = [server.url(f"/trickle?seconds=20&n={n}") for n in range(4)]
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "poolkit",
            "download",
            "-q",
            "--mode",
            mode,
            "-j",
            "4",
            "--out",
            str(tmp_path),
            *urls,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _interrupt_once_partial(child, tmp_path, partials=4)
    assert list(tmp_path.iterdir()) == []


def test_async_mode_without_aiohttp_says_so(server: LocalServer) -> None:
    """--mode async without aiohttp: one line on stderr with the install hint, then threads."""
    url = server.url("/bytes/3")
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "from poolkit._cli import main\n"
        f"raise SystemExit(main(['download', '-q', '--mode', 'async', {url!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("aiohttp is not installed") == 1
    assert "poolkit[async]" in done.stderr


def test_demo_exits_1_when_downloads_fail() -> None:
    """A demo whose downloads fail (latency over the timeout) exits 1, not 0."""
    done = cli("demo", "--modes", "serial", "--sites", "2", "--latency", "0.6", "--timeout", "0.3")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ReadTimedOut" in done.stdout


def test_interrupted_summary_reports_the_real_wall_time(
    server: LocalServer, tmp_path: Path
) -> None:
    """Ctrl-C after about a second: the summary says how long it ran, not 0.00 s."""
    import re

    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "poolkit",
            "download",
            "--out",
            str(tmp_path),
            server.url("/bytes/10"),
            server.url("/trickle?seconds=20"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = _interrupt_once_partial(child, tmp_path, partials=1, after=0.5)
    took = float(re.search(r"in (\d+\.\d+) s", err).group(1))  # type: ignore[union-attr]
    assert took >= 0.4, err


def test_json_on_a_pipe_and_the_bar_on_a_terminal_do_not_mix(server: LocalServer) -> None:
    """--json to a pipe while stderr is a terminal: stdout is pure JSON, the bar stays on
    the terminal."""
    import pty

    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "poolkit",
            "download",
            "--json",
            *[server.url(f"/bytes/{n}") for n in range(1, 6)],
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    out, _ = child.communicate(timeout=60)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(leader)
    assert child.returncode == 0
    records = [json.loads(line) for line in out.splitlines()]  # nothing but JSON lines
    assert sorted(r["bytes"] for r in records) == [1, 2, 3, 4, 5]
    assert b'"url"' not in terminal
    assert b"5/5" in terminal  # the bar drew on the terminal


def _interrupt_once_partial(
    child: subprocess.Popen[str], folder: Path, *, partials: int, after: float = 0.0
) -> str:
    """SIGINT ``child`` once ``partials`` .part files are in ``folder`` (and ``after``
    seconds more); check it exits 130; return its stderr."""
    import signal

    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(folder.glob("*.part"))) < partials:
            time.sleep(0.05)  # observing the folder until the transfers have begun
        assert len(list(folder.glob("*.part"))) >= partials
        time.sleep(after)  # fault injection: let it run a while
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == 130, err
    return err
