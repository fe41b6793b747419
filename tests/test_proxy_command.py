"""``interlock proxy`` on the command line: bad options fail fast with a clear message; the real server starts,
serves a local model to the openai client and stops on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from interlock.monitor.cli import main
from interlock.monitor.proxy import free_port

import tests.tiny_model as tiny

tiny_model_dir = tiny.tiny_model_dir


@pytest.mark.parametrize(("argv", "message"), [
    (["--base-url", "http://x/v1", "--local", "m"], "--base-url and --local exclude each other"),
    (["--verifier", "no-such-check", "--base-url", "http://x/v1"], "no verifier named 'no-such-check'"),
    (["--request-timeout", "0", "--base-url", "http://x/v1"], "--request-timeout must be positive"),
    (["--tool-verifier", "transfer=no_such_module_x:check", "--base-url", "http://x/v1"],
     "tool check 'no_such_module_x:check': cannot import no_such_module_x: ModuleNotFoundError"),
    (["--tool-verifier", "=arithmetic", "--base-url", "http://x/v1"], "expected [TOOL=]NAME or [TOOL=]module:function"),
    (["--tool-verifier", "no-such-check", "--base-url", "http://x/v1"], "no verifier named 'no-such-check'"),
    (["--workers", "0", "--base-url", "http://x/v1"], "--workers must be positive"),
    (["--tokenizer", "/no/such/tokenizer", "--base-url", "http://x/v1"], "--tokenizer '/no/such/tokenizer': no local"),
    (["--tokenizer", "/no/such/tokenizer"], "--tokenizer counts an upstream's tokens: use it with --base-url"),
    (["--responses-upstream", "responses"], "--responses-upstream says how /v1/responses reaches an upstream"),
])
def test_bad_options_fail_before_serving(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["proxy", *argv]) == 2
    assert message in capsys.readouterr().err


def test_tool_checks_load_from_a_file_a_module_and_the_registry(tmp_path: Path) -> None:
    from interlock import Verifier
    from interlock.monitor.proxy import load_tool_checks

    checks = tmp_path / "checks.py"
    checks.write_text("def at_most_100(arguments):\n    return arguments['amount'] <= 100\n")
    loaded = load_tool_checks([f"transfer={checks}:at_most_100", "arithmetic", "pay=tests.support:check_sums"])
    assert sorted(loaded) == ["*", "pay", "transfer"]
    (fn,) = loaded["transfer"]
    assert callable(fn) and fn({"amount": 5}) is True and fn({"amount": 500}) is False
    assert isinstance(loaded["*"][0], Verifier) and loaded["*"][0].name == "arithmetic"
    assert loaded["pay"][0].__name__ == "check_sums"


@pytest.mark.slow
def test_the_command_serves_a_local_model(tiny_model_dir: Path) -> None:
    port = free_port()
    env = {**os.environ, "INTERLOCK_PROXY_API_KEY": "k", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "interlock", "proxy", "--local", str(tiny_model_dir),
                                "--model", "tiny", "--port", str(port), "--max-tokens", "8"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the proxy did not start within 120 s"
            time.sleep(0.2)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0) as client:
            completion = client.completions.create(model="tiny", prompt="Once upon a time")
            models = client.models.list()
        assert completion.usage is not None and completion.usage.completion_tokens == 8
        assert completion.choices[0].finish_reason == "length"
        assert [m.id for m in models.data] == ["tiny"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


async def test_tokenizer_counts_an_upstreams_tokens_when_it_sends_no_usage(tiny_model_dir: Path) -> None:
    from interlock.monitor.cli.main import build_parser
    from interlock.monitor.cli.proxy import build_config, local_token_counter
    from interlock.monitor.proxy import create_app, serving
    from transformers import AutoTokenizer

    from tests.scripted_upstream import ScriptedUpstream, Turn

    text = "Once upon a time there was a tokenizer."
    upstream = ScriptedUpstream(lambda body: Turn(text), usage=False)
    async with serving(upstream.app()) as up_url:
        args = build_parser().parse_args(["proxy", "--base-url", up_url + "/v1", "--tokenizer", str(tiny_model_dir)])
        config, _, _ = build_config(args)
        async with serving(create_app(config)) as url, httpx.AsyncClient(timeout=30) as http:
            answer = (await http.post(url + "/v1/chat/completions", json={
                "model": "m", "messages": [{"role": "user", "content": "Tell."}]})).json()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    per_event = sum(len(tokenizer.encode(w, add_special_tokens=False)) for w in
                    [w + " " for w in text.split(" ")[:-1]] + [text.split(" ")[-1]])
    assert answer["choices"][0]["message"]["content"] == text
    assert answer["usage"]["completion_tokens"] == per_event > len(text.split(" "))
    count = local_token_counter(str(tiny_model_dir))
    assert count("Once upon") == len(tokenizer.encode("Once upon", add_special_tokens=False))


def test_help_banner_and_docs_agree_that_default_verifiers_are_chosen_once_per_process(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The code picks the default verifiers once (``applicable_verifiers("")``), not from each request's prompt: the
    help, the banner and docs/cli.md say so."""
    with pytest.raises(SystemExit):
        main(["proxy", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: those that apply to every prompt, chosen once when the proxy starts" in help_text
    assert "each request" not in help_text
    from interlock.monitor.cli.main import build_parser
    from interlock.monitor.cli.proxy import build_config

    _, _, banner = build_config(build_parser().parse_args(["proxy", "--base-url", "http://127.0.0.1:9/v1"]))
    assert banner == "verifiers: arithmetic (those that apply to every prompt; -v NAME to choose)"
    docs = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    assert "Without `-v`, the proxy runs the verifiers that apply to every prompt" in docs


@pytest.mark.parametrize("route", ["auto", "chat", "responses"])
def test_responses_upstream_picks_how_v1_responses_reaches_the_upstream(route: str) -> None:
    from interlock.monitor.cli.main import build_parser
    from interlock.monitor.cli.proxy import build_config

    argv = ["proxy", "--base-url", "http://127.0.0.1:9/v1"] + (["--responses-upstream", route] if route != "auto"
                                                               else [])
    config, _, _ = build_config(build_parser().parse_args(argv))
    assert config.backend.responses == route  # type: ignore[attr-defined]
