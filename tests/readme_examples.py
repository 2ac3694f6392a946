"""The README's terminal examples as data: parsed, run in one shell session, compared.

A fenced block tagged ``console`` is a terminal session::

    ```console
    $ curl -s localhost:8000/users/1/
    {"id":1,"name":"Alice",
     "email":"alice@example.com"}
    ```

* A line starting with ``$ `` is a command. It goes on over the next lines while it ends with
  a backslash or leaves a quote open (a ``-d '{...}'`` body over several lines), as in a shell.
* Every other line is the output the command must print, stdout and stderr together, and
  nothing else: a command shown without output must print nothing.
* ``...`` matches any text, none included, across lines (doctest's ELLIPSIS): what changes from
  run to run (``took_ms``, keys, times).
* Line breaks and indentation are not significant, so a long compact JSON line can be shown
  wrapped: where the README breaks a line, the output may have any whitespace or none, and a
  space inside a line matches any run of whitespace. Anything else is compared exactly, so
  ``{"id": 1}`` does not match the server's compact ``{"id":1}``.
* Every command must exit with status 0: a command that is meant to fail shows it
  (``... || echo "exit status $?"``).

Blocks with any other tag (``sh``, ``text``, ``json``) are illustrations and are not run.

:func:`examples` parses a README, :class:`Shell` runs commands one after another in one bash
(so ``export TOKEN=...`` carries to the next block), :func:`first_difference` says where an
output stops matching what the README shows. ``tests/test_readme.py`` puts them together.
"""

import os
import re
import select
import shlex
import signal
import subprocess
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

PROMPT = "$ "
_FENCE = re.compile(r"^(\s*)```\s*([\w-]*)\s*$")


@dataclass
class Example:
    """One command of a console block, and the output the README shows for it."""

    line: int  # the README line of the command's first line (1-based)
    command: str
    expected: list[str] = field(default_factory=list)

    @property
    def output_line(self) -> int:
        """The README line of the first line of output it shows."""
        return self.line + self.command.count("\n") + 1


class ReadmeError(ValueError):
    """A console block that cannot be read as a session (output before any command...)."""


def examples(markdown: str, tag: str = "console") -> list[Example]:
    """Every command of every ``tag`` block, in the order of the document."""
    found: list[Example] = []
    lines = markdown.splitlines()
    number = 0
    while number < len(lines):
        opening = _FENCE.match(lines[number])
        number += 1
        if not opening:
            continue
        indent, info = opening.groups()
        start = number
        while number < len(lines) and lines[number].strip() != "```":
            number += 1
        if number == len(lines):
            raise ReadmeError(f"line {start}: a ``` block that is never closed")
        if info == tag:
            block = [line.removeprefix(indent) for line in lines[start:number]]
            found += _session(block, first_line=start + 1)
        number += 1
    return found


def _session(lines: list[str], first_line: int) -> list[Example]:
    session: list[Example] = []
    index = 0
    while index < len(lines):
        text = lines[index]
        if not text.startswith(PROMPT):
            if not session and text.strip():
                raise ReadmeError(f"line {first_line + index}: output before any command")
            if session:
                session[-1].expected.append(text)
            index += 1
            continue
        example = Example(first_line + index, text[len(PROMPT) :])
        while _goes_on(example.command) and index + 1 < len(lines):
            index += 1
            example.command += "\n" + lines[index]
        session.append(example)
        index += 1
    if not session:
        raise ReadmeError(f"line {first_line}: a console block without a command")
    return session


def _goes_on(command: str) -> bool:
    """Whether a shell would read another line for ``command``: a trailing backslash, or a
    quote left open."""
    if command.endswith("\\"):
        return True
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation"
        return True
    return False


# --- comparing ------------------------------------------------------------------------------


def _line_pattern(line: str) -> str:
    words = line.split()
    return r"\s+".join(".*?".join(re.escape(part) for part in word.split("...")) for word in words)


def output_pattern(expected: list[str]) -> re.Pattern[str]:
    """What the output must be, whole (see the module docstring)."""
    shown = [_line_pattern(line) for line in expected if line.strip()]
    return re.compile(r"\s*".join(shown), re.DOTALL)


def first_difference(expected: list[str], actual: str) -> int | None:
    """None if ``actual`` is what ``expected`` shows; else the index (in ``expected``) of the
    first line it does not match, or ``len(expected)`` when it prints more than shown."""
    actual = actual.strip()
    if output_pattern(expected).fullmatch(actual):
        return None
    for index in range(len(expected)):
        if expected[index].strip() and not output_pattern(expected[: index + 1]).match(actual):
            return index
    return len(expected)


# --- running --------------------------------------------------------------------------------


class Shell:
    """One bash, fed commands one at a time: variables, the directory and exports carry over.

    Each command runs with stdin from /dev/null, its stderr into its stdout; after it the shell
    prints a marker line with its exit status, which is where its output ends.
    """

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.marker = f"__readme_example_{uuid.uuid4().hex}__"
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._done = re.compile(rb"\n?" + self.marker.encode() + rb" (\d+)\n")

    def run(self, command: str, timeout: float = 60) -> tuple[str, int]:
        """(output, exit status) of ``command``; raises TimeoutError if it hangs."""
        script = f"{{ {command}\n}} </dev/null\nprintf '\\n%s %s\\n' {self.marker} \"$?\"\n"
        self.process.stdin.write(script.encode())
        self.process.stdin.flush()
        received = b""
        deadline = time.monotonic() + timeout
        while not (done := self._done.search(received)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no end after {timeout} s; output so far:\n{received.decode()}")
            ready, _, _ = select.select([self.process.stdout], [], [], left)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError(f"the shell exited; output so far:\n{received.decode()}")
                received += chunk
        return received[: done.start()].decode(errors="replace"), int(done.group(1))

    def close(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def report(example: Example, output: str, status: int, readme: str = "README.md") -> str | None:
    """None when ``example`` ran as the README shows; else what a reader needs to fix it."""
    if status != 0:
        problem = f"exited with status {status}"
    else:
        index = first_difference(example.expected, output)
        if index is None:
            return None
        where = (
            f"its line {example.output_line + index}"
            if index < len(example.expected)
            else "the end of what the README shows"
        )
        problem = f"printed something other than what the README shows, from {where} on"
    shown = "\n".join(example.expected) or "(nothing)"
    return (
        f"{readme} line {example.line}: the command {problem}.\n"
        f"$ {example.command}\n"
        f"--- the README shows ---\n{shown}\n"
        f"--- it printed ---\n{output.rstrip() or '(nothing)'}\n"
    )
