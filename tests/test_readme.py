"""The README's examples, run in order as a newcomer runs them, must print what it shows.

The test does what the README tells a newcomer: ``make run`` (``init_db``, then the server),
then every ``console`` block's commands, top to bottom, in one shell (see
``tests/readme_examples.py`` for the format). It starts from nothing: a fresh folder that looks
like the project (every entry of the project linked into it, no database file) is both the
working directory and ``DATA_DIR``, ``make run`` serves on a free port, and the README's
``localhost:8000`` is rewritten to it, in the commands and in what they print. The shell gets
a plain environment (no test settings, no database URLs, a home of its own), so it sees what a
newcomer's terminal sees. The first command that prints something other than what the README
shows, or exits with a status other than 0, fails the test, naming its README line.

``make run`` serves with ``manage.py runserver``, which cannot read a chunked body (a 411,
which the README shows); under gunicorn, which docker-compose runs, chunked bodies are read.

The examples are SQLite's (the ``sqlite3`` checks): on the PostgreSQL run of the suite the test
is skipped, as it would run the same thing again.
"""

import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import live
from tests.readme_examples import Example, ReadmeError, Shell, examples, first_difference, report

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# What a newcomer's clone has that the copy must not share: data, caches, git.
NOT_LINKED = {".git", ".test-data", ".bench-data", ".pytest_cache", ".ruff_cache", ".hypothesis"}
DATA_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal")
TOOLS = ("curl", "sqlite3", "make", "bash")


def project_folder(path: Path) -> Path:
    """A folder that looks like a fresh clone after ``make install``: the project's entries
    (its ``.venv`` too) linked in, no database file, no cache."""
    path.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED and not entry.name.endswith(DATA_SUFFIXES):
            (path / entry.name).symlink_to(entry)
    return path


def newcomer_env(folder: Path, home: Path) -> dict[str, str]:
    """What a terminal has: PATH (without the project's virtualenv), a home, a UTF-8 locale;
    DATA_DIR is the folder, which is where the databases are by default."""
    venv = str(ROOT / ".venv")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if venv not in p)
    return {
        "PATH": path,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "DATA_DIR": str(folder),
    }


@contextmanager
def make_run(env: dict[str, str], port: int, log: Path):
    """``make run`` on ``port``, as the README starts the service; stopped at the end."""
    with log.open("wb") as output:
        server = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(ROOT), "run", f"PORT={port}"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        live.wait_until(lambda: live.listening(port), "make run", server, timeout=120)
        yield
    finally:
        live.stop(server)


def local(text: str, port: int) -> str:
    return text.replace("localhost:8000", f"localhost:{port}").replace(
        "127.0.0.1:8000", f"127.0.0.1:{port}"
    )


def test_the_readme_examples_print_what_the_readme_shows(tmp_path):
    if os.environ.get("USERS_DATABASE_URL"):
        pytest.skip(
            "the README's examples run on SQLite files; the SQLite run of the suite runs them"
        )
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    assert not missing, f"the README's examples need {', '.join(missing)} (see its prerequisites)"
    session = examples(README.read_text())
    assert len(session) > 50, "the README's console blocks were not found"
    folder = project_folder(tmp_path / "project")
    home = tmp_path / "home"
    home.mkdir()
    env = newcomer_env(folder, home)
    port = live.free_port()
    log = tmp_path / "make-run.log"
    shell = Shell(folder, env)
    try:
        with make_run(env, port, log):
            for example in session:
                local_example = Example(
                    example.line,
                    local(example.command, port),
                    [local(line, port) for line in example.expected],
                )
                output, status = shell.run(local_example.command)
                problem = report(local_example, output, status)
                if problem:
                    pytest.fail(f"{problem}--- make run's log ---\n{log.read_text()[-3000:]}")
    finally:
        shell.close()


def test_the_readme_runs_manage_py_with_the_projects_python_only():
    # The system's python has no Django: `python manage.py ...` fails for a newcomer.
    bare = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(README.read_text().splitlines(), start=1)
        if re.search(r"(?<![/\w])python3? manage\.py", line)
    ]
    assert not bare, "\n".join(bare)


# --- the checker itself: it must find what is wrong ----------------------------------------

SAMPLE = """\
Some text, then a block that is not run:

```sh
rm -rf /
```

```console
$ export GREETING=hello
$ echo "$GREETING, world" \\
>&2
hello, world
$ printf '{"id":1,"name":"Alice","email":"alice@example.com","created":"%s"}' "$(date)"
{"id":1,"name":"Alice",
   "email":"alice@example.com","created":"..."}
$ echo 'a body
over two lines'   # a quote left open goes on
a body over two lines
```
"""


def test_console_blocks_are_read_as_commands_and_their_output():
    session = examples(SAMPLE)
    assert [(e.line, e.command) for e in session] == [
        (8, "export GREETING=hello"),
        (9, 'echo "$GREETING, world" \\\n>&2'),
        (
            12,
            """printf '{"id":1,"name":"Alice","email":"alice@example.com","created":"%s"}' \
"$(date)\"""",
        ),
        (15, "echo 'a body\nover two lines'   # a quote left open goes on"),
    ]
    assert session[1].expected == ["hello, world"]
    assert session[1].output_line == 11
    assert session[0].expected == []


def test_the_sample_session_runs_as_shown(tmp_path):
    shell = Shell(tmp_path, {"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    try:
        for example in examples(SAMPLE):
            assert report(example, *shell.run(example.command)) is None
    finally:
        shell.close()


@pytest.mark.parametrize(
    ("expected", "actual", "where"),
    [
        (['{"id":1,', ' "name":"Alice"}'], '{"id":1,"name":"Alice"}', None),
        (["a b"], "a\n  b\n", None),
        (['{"took_ms":...,"errors":false}'], '{"took_ms":12,"errors":false}', None),
        (["a ... z"], "a b\nc z", None),
        # Spaces the README does not show are a difference: the API prints compact JSON.
        (['{"id":1,"name":"Alice"}'], '{"id": 1, "name": "Alice"}', 0),
        (['{"id":1,"name":"Alice"}'], '{"id":1,\n  "name":"Alice"}', 0),
        (["one", "two", "three"], "one\ntwo\nfour", 2),
        (["one"], "one\ntwo", 1),
        ([], "something", 0),
        ([], "", None),
    ],
)
def test_outputs_are_compared_with_ellipses_and_free_line_breaks(expected, actual, where):
    assert first_difference(expected, actual) == where


def test_a_difference_names_the_readme_line_the_command_and_both_outputs():
    example = Example(40, "curl -s \\\n  localhost:8000/users/1/", ["{", '"id":1}', "201"])
    message = report(example, '{"id":2}\n201', 0)
    assert message.startswith(
        "README.md line 40: the command printed something other than what the README shows, "
        "from its line 43 on.\n$ curl -s \\\n  localhost:8000/users/1/\n"
    )
    assert '--- the README shows ---\n{\n"id":1}\n201\n--- it printed ---\n{"id":2}\n201' in message


def test_a_command_that_fails_fails_the_check_even_when_it_prints_what_is_shown(tmp_path):
    shell = Shell(tmp_path, {"PATH": os.environ["PATH"]})
    try:
        output, status = shell.run("echo shown; false")
        assert (output.strip(), status) == ("shown", 1)
        message = report(Example(3, "echo shown; false", ["shown"]), output, status)
        assert message.startswith("README.md line 3: the command exited with status 1.")
        assert shell.run("echo still here") == ("still here\n", 0)  # the session goes on
    finally:
        shell.close()


def test_a_console_block_must_start_with_a_command():
    with pytest.raises(ReadmeError, match="line 2: output before any command"):
        examples("```console\nhello\n$ echo hello\n```\n")
    with pytest.raises(ReadmeError, match="never closed"):
        examples("```console\n$ echo hello\n")
