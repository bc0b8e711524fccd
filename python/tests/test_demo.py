"""`python -m parafetch demo`: its output, and that every run fetches every URL."""

import re
import subprocess
import sys

import parafetch.__main__ as cli


def test_demo_prints_both_runs_and_the_speed_up(tmp_path):
    # Run where no source folder shadows the installed package, with a proxy variable
    # pointing nowhere: the demo's server is local and must be reached directly.
    out = subprocess.run(
        [sys.executable, "-m", "parafetch", "demo", "--requests", "8", "--delay-ms", "20",
         "--parallel", "4"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "http_proxy": "http://127.0.0.1:1"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        r"demo: 8 URLs from a local server \(127\.0\.0\.1:\d+\) that answers each after 20 ms",
        lines[0],
    )
    run = r"{n} in flight: +\d+\.\d{{3}} s +\d+\.\d requests/s  \(ideal {ideal} s\)"
    assert re.fullmatch(r" {4}" + run.format(n=1, ideal=r"0\.160"), lines[1])
    # 8 URLs, 4 at once: two rounds of 20 ms at best.
    assert re.fullmatch(
        r" {4}" + run.format(n=4, ideal=r"0\.040") + r"  speed-up \d+\.\dx", lines[2]
    )


def test_each_run_fetches_every_url_once():
    with cli.DemoServer(delay_ms=5) as server:
        for n in (1, 6):
            wall, ok = cli.fetch_run(server, 12, n)
            assert ok == 12
            # Each request is held 5 ms and at most n at once: 12 * 5 ms / n at least.
            assert wall >= 12 * 0.005 / n


class Unreachable:
    def __init__(self, port):
        self.port = port

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


def test_failed_requests_are_not_counted(closed_port):
    _, ok = cli.fetch_run(Unreachable(closed_port), 3, 2)
    assert ok == 0


def test_demo_fails_when_a_request_fails(monkeypatch, capsys):
    monkeypatch.setattr(cli, "fetch_run", lambda server, count, n: (0.1, count - 2))
    assert cli.demo(5, 0, [1, 2]) == 1
    assert "parafetch: demo: 2 of 5 requests failed" in capsys.readouterr().err


def test_arguments(capsys):
    for argv in (["demo", "--requests", "0"], ["demo", "--compare", "1,x"], [],
                 ["demo", "--parallel", "2", "--compare", "1,2"]):
        try:
            cli.main(argv)
        except SystemExit as e:
            assert e.code == 2, argv
        else:
            raise AssertionError(f"{argv} was accepted")
