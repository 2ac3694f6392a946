"""`make install` installs the client into the virtualenv: it runs from any folder, as
``store-client`` or ``python -m store_client``, not only from the project's."""

import os
import subprocess
import sys
from pathlib import Path


def test_the_client_runs_from_any_folder(tmp_path):
    commands = [
        [str(Path(sys.executable).parent / "store-client"), "--help"],
        [sys.executable, "-m", "store_client", "--help"],
    ]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for command in commands:
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "{push,export,jobs}" in result.stdout
