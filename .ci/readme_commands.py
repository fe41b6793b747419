"""Run a command of the README exactly as the README writes it, in the active environment; CI's proof that they work.

    python3 .ci/readme_commands.py first    # the install-and-run command: its outcome line and exit status checked
    python3 .ci/readme_commands.py tests    # the test command: its exit status is this script's

The commands are read from README.md (the bash block after "Install and run", the one after "Run the tests"), so
CI runs what a newcomer copies. For the first command, what a run must show is read from the README too: the
outcome line (one of the outcomes it lists) and the exit status its "Exit status" sentence gives that outcome.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKS = {"✓": "verified", "○": "unchecked", "✗": "violation|error", "⏹": "budget", "✂": "cut"}
# what a third-party progress bar leaves in a log ("  45%|████▌     | 123/272 [00:01<00:01, 98.2it/s]")
PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+ \[")


def command_after(text: str, heading: str) -> str:
    """The first ```bash block after the paragraph that starts with ``heading``, as one command line."""
    at = text.find(heading)
    if at < 0:
        raise SystemExit(f"README.md has no paragraph starting {heading!r}")
    block = re.search(r"```bash\n(.*?)```", text[at:], re.S)
    if block is None:
        raise SystemExit(f"README.md has no bash block after {heading!r}")
    lines = [line for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]
    if len(lines) != 1:
        raise SystemExit(f"the bash block after {heading!r} should be one command, found {len(lines)} lines")
    return lines[0].strip()


def documented_exit_codes(text: str) -> dict[str, int]:
    """Outcome -> exit status, from the README's sentence "Exit status (...): 0 verified or unchecked, 1 ..."."""
    sentence = re.search(r"Exit status \([^)]*\):(.*?)\.\n", text, re.S)
    if sentence is None:
        raise SystemExit("README.md has no 'Exit status (...): ...' sentence")
    body = re.sub(r"\([^)]*\)", "", sentence.group(1).replace("\n", " "))
    codes: dict[str, int] = {}
    for part in body.split(","):
        found = re.fullmatch(r"\s*(\d)\s+(.+?)\s*", part)
        if found is None:
            raise SystemExit(f"cannot read the README's exit status sentence at {part!r}")
        for name in found.group(2).split(" or "):
            codes[name.strip()] = int(found.group(1))
    return codes


def _echo(stream: IO[str], sink: IO[str], kept: list[str]) -> None:
    for line in stream:
        sink.write(line)
        sink.flush()
        kept.append(line)


def run(command: str) -> tuple[int, list[str], list[str]]:
    """Run ``command`` with bash in the repository root; its output goes to the log as it comes, and is kept."""
    print(f"$ {command}", flush=True)
    proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, encoding="utf-8", errors="replace")
    out: list[str] = []
    err: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    readers = [threading.Thread(target=_echo, args=(proc.stdout, sys.stdout, out)),
               threading.Thread(target=_echo, args=(proc.stderr, sys.stderr, err))]
    for reader in readers:
        reader.start()
    code = proc.wait()
    for reader in readers:
        reader.join()
    return code, out, err


def check_first(code: int, out: list[str], err: list[str], exit_codes: dict[str, int]) -> list[str]:
    """What is wrong with the first command's run ([] when nothing): the outcome line, its exit status, no bars."""
    lines = [line.rstrip("\n") for line in out if line.strip()]
    last = lines[-1] if lines else ""
    found = re.match(r"(\S) (\w+): ", last)
    if found is None or found.group(2) not in MARKS.get(found.group(1), "").split("|"):
        return [f"the run's last line is not an outcome line: {last!r} (exit status {code})"]
    outcome = found.group(2)
    problems = []
    if outcome not in exit_codes:
        problems.append(f"the README gives no exit status for the outcome {outcome!r}")
    elif code != exit_codes[outcome]:
        problems.append(f"outcome {outcome!r} exited {code}; the README says {exit_codes[outcome]}")
    bars = [line.rstrip() for line in err if PROGRESS_BAR.search(line)]
    if bars:
        problems.append(f"{len(bars)} progress-bar lines on stderr, e.g. {bars[0]!r}")
    return problems


def main() -> int:
    which = sys.argv[1] if len(sys.argv) == 2 else ""
    text = README.read_text(encoding="utf-8")
    if which == "first":
        exit_codes = documented_exit_codes(text)
        code, out, err = run(command_after(text, "Install and run"))
        problems = check_first(code, out, err, exit_codes)
        for problem in problems:
            print(f"README's first command: {problem}", file=sys.stderr)
        if not problems:
            print(f"README's first command: ok ({out[-1].split(':')[0].strip()}, exit status {code} as documented)")
        return 1 if problems else 0
    if which == "tests":
        code, _, _ = run(command_after(text, "Run the tests"))
        return code
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
