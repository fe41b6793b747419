"""``interlock run`` as a person uses it: in a real terminal (tmux: the scrollback holds each line once), into a
pipe (plain text, removed text marked), the outcome and its exit code, backend failures (exit 2), environment
defaults. The model is a scripted generator (``--generator scripted_cli:NAME``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from interlock.monitor.cli import main

TESTS = Path(__file__).parent
INTERLOCK = [sys.executable, "-m", "interlock"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return {**env, **extra}


@pytest.fixture(autouse=True)
def _scripts_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    for key in list(os.environ):
        if key.startswith("INTERLOCK_"):
            monkeypatch.delenv(key)


# -- a real terminal -----------------------------------------------------------------------------------------
def _in_tmux(tmp_path: Path, script: str | None, *, width: int, height: int, options: str = "-v arithmetic",
             timeout: float = 120, seen: list[str] | None = None, **env: str) -> tuple[str, list[str]]:
    """Run ``interlock run 'What is 2 + 2?' --generator scripted_cli:SCRIPT`` (the embedded model when ``script``
    is None) in a tmux terminal of that size: (exit status, the lines of the whole scrollback with wrapped lines
    joined, blank ones left out). ``seen`` collects every line the screen showed while it ran."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("no tmux")
    sock = str(tmp_path / "tmux.sock")
    done = tmp_path / "done"
    generator = f"--generator scripted_cli:{script} " if script else ""
    command = (f"cd {TESTS} && PYTHONPATH={TESTS} {sys.executable} -m interlock run 'What is 2 + 2?' "
               f"{generator}{options}; echo $? > {done}")
    base = [tmux, "-S", sock, "-f", "/dev/null"]
    subprocess.run([*base, "new-session", "-d", "-x", str(width), "-y", str(height), "-s", "t", "bash", "--norc",
                    "--noprofile"], check=True, env=_env(TERM="xterm-256color", **env))
    try:
        subprocess.run([*base, "set-option", "-g", "history-limit", "20000"], check=True)
        subprocess.run([*base, "send-keys", "-t", "t", command, "Enter"], check=True)
        deadline = time.monotonic() + timeout
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
            if seen is not None:
                screen = subprocess.run([*base, "capture-pane", "-p", "-t", "t"], check=True, capture_output=True,
                                        text=True).stdout
                seen.extend(line.strip() for line in screen.splitlines() if line.strip() not in seen)
        assert done.exists(), "the run did not end"
        time.sleep(0.3)
        history = subprocess.run([*base, "capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", "t"],
                                 check=True, capture_output=True, text=True).stdout
    finally:
        subprocess.run([*base, "kill-server"], check=False)
    return done.read_text().strip(), [line.rstrip() for line in history.splitlines() if line.strip()]


def test_in_a_15_row_terminal_each_line_reaches_the_scrollback_once(tmp_path: Path) -> None:
    code, lines = _in_tmux(tmp_path, "wrong_then_fixed", width=80, height=15)
    assert code == "0"
    trace_lines = [line for line in lines if line.startswith("Then 2 + ")]
    assert trace_lines == [f"Then 2 + {i} = {2 + i}." for i in range(60)]  # each once, in order
    assert sum("2 + 2 = 5." in line for line in lines) == 1  # the removed step, printed once
    assert sum("Wait, 2 + 2 is 4, not 5. Let me redo this step." in line for line in lines) == 1
    assert lines[-2].startswith("✓ verified: ") and "1 intervention" in lines[-2]
    # the whole scrollback: the trace's 63 lines, the note, the command, the verifiers line, the summary
    assert len(lines) <= 63 + 8, "\n".join(lines)
    assert not any("tokens (" in line for line in lines)  # the status line was live only


@pytest.mark.parametrize(("script", "width"), [("long_last_line", 100), ("long_last_line_slow", 100),
                                               ("long_last_line", 60)])
def test_a_last_line_wider_than_the_terminal_without_a_newline_is_shown_whole(
        tmp_path: Path, script: str, width: int) -> None:
    from scripted_cli import LONG_LAST_LINE

    code, lines = _in_tmux(tmp_path, script, width=width, height=30)
    assert code == "0"
    start = next(i for i, line in enumerate(lines) if line.startswith("So 2 + 2 = 4."))
    # the trace, then the summary, then the prompt: the whole last line once, nothing left of the live region
    assert lines[start:start + 2] == ["So 2 + 2 = 4.", LONG_LAST_LINE], "\n".join(lines)
    assert lines[start + 2].startswith("✓ verified: 1 check passed"), "\n".join(lines)
    assert len(lines) == start + 4, "\n".join(lines)
    assert not any("tokens (" in line for line in lines)


@pytest.mark.slow
def test_the_first_runs_conversion_shows_only_the_spinner_then_one_line(tmp_path: Path) -> None:
    """The embedded model converted into an empty cache: no third-party progress bar reaches the scrollback."""
    seen: list[str] = []
    code, lines = _in_tmux(tmp_path, None, width=100, height=30, options="--max-tokens 8", timeout=600,
                           seen=seen, INTERLOCK_CACHE_DIR=str(tmp_path / "cache"))
    # while it converted, the spinner said so
    assert any(re.fullmatch(r"\S converting SmolLM2-135M-Instruct\.\S+\.gguf from GGUF, once · verifiers: "
                            "arithmetic", line) for line in seen), seen
    assert code == "3"  # 8 tokens: the budget ends the run
    start = max(i for i, line in enumerate(lines) if "-m interlock run" in line)
    shown = lines[start + 1:]
    assert re.fullmatch(r"interlock: converted in \d+ s; cached in .*/cache/models/SmolLM2-135M-Instruct\.\S+ "
                        r"\(later loads skip the conversion\)", shown[0]), "\n".join(lines)
    assert shown[1] == "interlock: verifiers: arithmetic", "\n".join(lines)
    assert shown[-2].startswith("⏹ budget: "), "\n".join(lines)
    assert len(shown) <= 6, "\n".join(lines)  # and the trace's line or two, nothing else
    assert not any("%|" in line or "it/s" in line or "converting" in line for line in lines), "\n".join(lines)


# -- a pipe ----------------------------------------------------------------------------------------------------
def test_into_a_pipe_the_removed_step_is_shown_and_marked() -> None:
    done = subprocess.run([*INTERLOCK, "run", "What is 2 + 2?", "--generator", "scripted_cli:instant", "-v",
                           "arithmetic"], capture_output=True, text=True, env=_env(), timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    body, summary = done.stdout.rsplit("\n", 2)[0], done.stdout.splitlines()[-1]
    assert body == ("We add. [-2 + 2 = 5.\nDone.-]\n  ⟲ arithmetic: 2 + 2 is 4, not 5. (rolled back)\n"
                    "Wait, 2 + 2 is 4, not 5. Let me redo this step.\n2 + 2 = 4.\nDone.")
    assert summary.startswith("✓ verified: ") and summary.endswith("ended: complete")
    assert "\x1b[" not in done.stdout


# -- outcomes --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("script", "outcome", "code", "first"), [
    ("instant", "verified", 0, "✓ verified: "),
    ("poem", "unchecked", 0, "○ unchecked: nothing in it could be checked"),
    ("cut_short", "cut", 3, "✂ cut: the generator's own token limit cut it off"),
])
def test_outcome_in_the_summary_the_json_and_the_exit_code(script: str, outcome: str, code: int, first: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "q", "--generator", f"scripted_cli:{script}", "-v", "arithmetic"]) == code
    assert capsys.readouterr().out.splitlines()[-1].startswith(first)
    assert main(["run", "q", "--generator", f"scripted_cli:{script}", "-v", "arithmetic", "--json"]) == code
    payload = json.loads(capsys.readouterr().out)
    assert payload["outcome"] == outcome
    assert payload["passed"] is (outcome in ("verified", "unchecked"))


def test_a_cut_run_marks_its_last_step_cut(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "q", "--generator", "scripted_cli:cut_short", "-v", "arithmetic", "--json"]) == 3
    payload = json.loads(capsys.readouterr().out)
    assert payload["text"] == "So 3 + 9 = 1"  # five pieces: "12" was cut after its first digit
    assert payload["stop_reason"] == "length"
    # the value at the very end of a cut step may be unfinished: judged unknown, never failed
    assert [v["kind"] for v in payload["verdicts"]] == ["unknown"]
    assert payload["open_violations"] == []


def test_lone_surrogates_are_replaced_and_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "q", "--generator", "scripted_cli:surrogate", "-v", "arithmetic", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["text"] == "Bad \ufffd text, 1 + 1 = 2.\n"
    assert "1 lone surrogate(s) in the result were written as U+FFFD" in captured.err
    assert main(["run", "q", "--generator", "scripted_cli:surrogate", "-v", "arithmetic"]) == 0
    assert capsys.readouterr().out.startswith("Bad \ufffd text, 1 + 1 = 2.\n")


# -- the backend fails: exit 2 ----------------------------------------------------------------------------------
class _Broken(BaseHTTPRequestHandler):
    mode = "401"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.mode == "401":
            body = b'{"error": {"message": "bad key", "type": "invalid_request_error"}}'
            self.send_response(401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        if self.mode == "malformed":
            self.wfile.write(b"data: {not json\n\n")
        else:  # one good event, then the connection breaks
            delta = {"choices": [{"index": 0, "delta": {"content": "So 2 + 2 = 4"}, "finish_reason": None}]}
            self.wfile.write(b"data: " + json.dumps(delta).encode() + b"\n\n")
            self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def broken_server() -> Iterator[tuple[str, type[_Broken]]]:
    handler = type("Handler", (_Broken,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("mode", "message"), [("401", "401"), ("malformed", "is not JSON"),
                                               ("broken", "")])
def test_a_failing_backend_exits_2(broken_server: tuple[str, type[_Broken]], mode: str, message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    url, handler = broken_server
    handler.mode = mode
    code = main(["run", "What is 2 + 2?", "--base-url", url, "--model", "m", "-v", "arithmetic"])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.out.splitlines()[-1].startswith("✗ error: the generator failed")
    assert "interlock run: error: " in captured.err and message in captured.err


# -- one name per concept, environment defaults ---------------------------------------------------------------
def test_environment_defaults_and_their_errors(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("INTERLOCK_VERIFIERS", "none")
    monkeypatch.setenv("INTERLOCK_MAX_TOKENS", "3")
    assert main(["run", "q", "--generator", "scripted_cli:poem", "--json"]) == 3
    payload = json.loads(capsys.readouterr().out)
    assert payload["verdicts"] == [] and payload["tokens"]["total"] == 3 and payload["outcome"] == "budget"
    # the command line wins over the environment
    assert main(["run", "q", "--generator", "scripted_cli:poem", "--json", "--max-tokens", "50", "-v",
                 "arithmetic"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "unchecked"
    monkeypatch.setenv("INTERLOCK_MAX_TOKENS", "lots")
    assert main(["run", "q", "--generator", "scripted_cli:poem"]) == 2
    assert "$INTERLOCK_MAX_TOKENS must be an integer, got 'lots'" in capsys.readouterr().err


def test_trace_file_header_records_model_verifiers_governors_and_version(tmp_path: Path) -> None:
    from interlock import __version__, read_trace

    record = tmp_path / "run.trace.jsonl"
    assert main(["run", "q", "--generator", "scripted_cli:instant", "-v", "arithmetic", "--json", "--record",
                 str(record), "--max-tokens", "40"]) == 0
    recorded = read_trace(record)
    meta = recorded.meta
    assert recorded.end is not None and recorded.end["outcome"] == "verified"  # the end line says the outcome too
    assert meta["interlock_version"] == __version__
    assert meta["model"] == "scripted_cli:instant" and meta["generator"] == "Scripted"
    assert [v["name"] for v in meta["verifiers"]] == ["arithmetic"]
    governors = {g["name"]: g for g in meta["governors"]}
    assert governors["token_budget"]["max_total"] == 40
    assert governors["loop_guard"]["min_repeats"] == 3


def test_a_spinner_while_the_model_loads_and_a_status_line_while_it_writes() -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "interlock", "run", "q", "--generator", "scripted_cli:slow_to_load",
                                           "-v", "arithmetic"], env=_env(TERM="xterm-256color"),
                          dimensions=(15, 100), encoding="utf-8", timeout=120)
    output = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.read())
    child.close()
    assert child.exitstatus == 0, output
    before = output[:output.index("interlock: verifiers: arithmetic")]
    assert "loading the model · verifiers: arithmetic" in before
    frames = {frame for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏" if f"{frame} loading the model" in before}
    assert len(frames) >= 2  # it turned while the model loaded
    assert "/512 tokens (" in output and "kept, 0 discarded) · 0 interventions · " in output


# -- the proxy's banner and verifiers, replay's environment ------------------------------------------------------
def test_proxy_banner_comes_after_the_bind_and_says_what_is_checked() -> None:
    import signal
    import socket

    from interlock.monitor.proxy import free_port

    port = free_port()
    # Ctrl-C as in a terminal, whatever the test process does with SIGINT
    first = subprocess.Popen([*INTERLOCK, "proxy", "--base-url", "http://127.0.0.1:9/v1", "--port", str(port),
                              "-v", "none"], env=_env(), stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert first.stderr is not None
        banner = first.stderr.readline()
        assert banner == (f"interlock proxy: http://127.0.0.1:{port}/v1 -> upstream http://127.0.0.1:9/v1; "
                          "WARNING: no verifier: nothing in the answers is checked\n")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # bound before the banner was printed
        second = subprocess.run([*INTERLOCK, "proxy", "--base-url", "http://127.0.0.1:9/v1", "--port", str(port)],
                                env=_env(), capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 2
        assert f"could not listen on 127.0.0.1:{port}" in second.stderr
        assert "interlock proxy: http" not in second.stderr  # no banner for a server that never listened
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=30)
    assert first.returncode == 130


def test_the_proxy_stops_on_sigint_and_sigterm_even_where_sigint_was_ignored() -> None:
    """A background job of a script starts with SIGINT ignored; uvicorn still takes the signal and stops serving,
    and the command must then end too, not wait forever."""
    import signal

    from interlock.monitor.proxy import free_port

    def ignoring_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    for sig in (signal.SIGINT, signal.SIGTERM):
        port = free_port()
        proxy = subprocess.Popen([*INTERLOCK, "proxy", "--base-url", "http://127.0.0.1:9/v1", "--port", str(port),
                                  "-v", "none"], env=_env(), stderr=subprocess.PIPE, text=True,
                                 preexec_fn=ignoring_sigint)
        try:
            assert proxy.stderr is not None
            assert proxy.stderr.readline().startswith(f"interlock proxy: http://127.0.0.1:{port}/v1 -> ")
            proxy.send_signal(sig)
            assert proxy.wait(timeout=30) in (0, -signal.SIGTERM)  # SIGTERM's default ends it by the signal
        finally:
            if proxy.poll() is None:
                proxy.kill()
                proxy.wait(timeout=10)


def test_proxy_without_verifiers_runs_those_that_apply_to_every_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from interlock.monitor.cli import proxy

    seen: dict[str, object] = {}

    async def fake_serve(app: object, args: argparse.Namespace, what: str) -> None:
        seen["what"] = what

    monkeypatch.setattr(proxy, "_serve", fake_serve)
    assert main(["proxy", "--base-url", "http://127.0.0.1:9/v1"]) == 0
    assert str(seen["what"]).endswith("verifiers: arithmetic (those that apply to every prompt; -v NAME to choose)")
    monkeypatch.setenv("INTERLOCK_VERIFIERS", "arithmetic,game24")
    assert main(["proxy", "--base-url", "http://127.0.0.1:9/v1"]) == 0
    assert str(seen["what"]).endswith("verifiers: arithmetic, game24 (given)")


def test_replay_takes_its_verifiers_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "answer.txt"
    trace.write_text("So 2 + 2 = 5.\n")
    monkeypatch.setenv("INTERLOCK_VERIFIERS", "arithmetic")
    assert main(["replay", str(trace)]) == 1  # a violation: replay exits 1
    assert capsys.readouterr().out.splitlines()[0].startswith("answer.txt: arithmetic [3, 12) ")
