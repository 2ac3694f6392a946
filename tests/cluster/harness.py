"""A whole deployment on this machine, built from real servers, for ``make test-cluster``.

What docker-compose.yml describes, with processes instead of containers: a PostgreSQL server
per database (default, users, products, orders; each its own data directory, port and
postmaster, made by the installed PostgreSQL's ``initdb`` and ``pg_ctl``), Redis, two Celery
workers, two gunicorn processes on production settings, and nginx in front of them with
``deploy/nginx.conf``. Everything lives in one scratch directory and is stopped on the way out,
whatever happened (:meth:`Cluster.close`); a test may stop and start any part meanwhile.

PostgreSQL will not run as root: as root, its commands run as the ``postgres`` user.
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from pathlib import Path

from tests import live

ROOT = live.ROOT
DATABASES = ("default", "users", "products", "orders")
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def _pg_bin() -> Path:
    found = shutil.which("pg_config")
    if found is None:
        raise RuntimeError("pg_config is not installed: the PostgreSQL 15 server is needed")
    return Path(subprocess.check_output([found, "--bindir"], text=True).strip())


def _as_postgres(command: list) -> list[str]:
    command = [str(part) for part in command]
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Host:
    """A test host with an address of its own: a network namespace joined to this one by a veth
    pair (root only). ``cut()`` takes its end of the link down: packets to it vanish, nothing
    refuses, as in a network partition; ``restore()`` brings it back."""

    def __init__(self, index: int) -> None:
        tag = f"{os.getpid() % 100000}{index}"
        self.namespace, self.outer, self.inner = f"store-{tag}", f"sto{tag}", f"sti{tag}"
        self.address = f"10.213.{index}.2"
        self._outer_address = f"10.213.{index}.1/24"

    def create(self) -> None:
        for command in (
            ["ip", "netns", "add", self.namespace],
            ["ip", "link", "add", self.outer, "type", "veth", "peer", "name", self.inner],
            ["ip", "link", "set", self.inner, "netns", self.namespace],
            ["ip", "addr", "add", self._outer_address, "dev", self.outer],
            ["ip", "link", "set", self.outer, "up"],
            self.run(["ip", "addr", "add", f"{self.address}/24", "dev", self.inner]),
            self.run(["ip", "link", "set", self.inner, "up"]),
            self.run(["ip", "link", "set", "lo", "up"]),
        ):
            subprocess.run(command, check=True, capture_output=True)

    def run(self, command: list) -> list[str]:
        """``command`` run inside the host."""
        return ["ip", "netns", "exec", self.namespace, *[str(part) for part in command]]

    def cut(self) -> None:
        subprocess.run(self.run(["ip", "link", "set", self.inner, "down"]), check=True)

    def restore(self) -> None:
        subprocess.run(self.run(["ip", "link", "set", self.inner, "up"]), check=True)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.namespace], check=False)
        subprocess.run(["ip", "link", "del", self.outer], check=False, capture_output=True)


class Postgres:
    """One PostgreSQL server: its own data directory, port and postmaster; on its own test
    host when given one."""

    def __init__(self, root: Path, name: str, host: Host | None = None) -> None:
        self.name, self.port = name, live.free_port()
        self.directory = root / f"pg-{name}"
        self.bin = _pg_bin()
        self.host = host
        self.address = host.address if host else "127.0.0.1"

    def init(self) -> None:
        self.directory.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    self.bin / "initdb",
                    "-D",
                    self.directory,
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        with (self.directory / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '{self.address}'\n"
                f"unix_socket_directories = '{self.directory}'\n"
                # A test machine: no fsync (a stopped server still keeps what it committed,
                # only a power cut would not), small buffers.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 64MB\nmax_connections = 60\n"
            )
        if self.host:  # initdb lets in loopback only; this host is reached over its veth link
            with (self.directory / "pg_hba.conf").open("a") as hba:
                hba.write("host all all 10.213.0.0/16 trust\n")

    def _in_host(self, command: list[str]) -> list[str]:
        return self.host.run(command) if self.host else command

    def start(self) -> None:
        subprocess.run(
            self._in_host(
                _as_postgres(
                    [
                        self.bin / "pg_ctl",
                        "-D",
                        self.directory,
                        "-l",
                        self.directory / "server.log",
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ]
                )
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self._in_host(
                _as_postgres([self.bin / "pg_ctl", "-D", self.directory, "-m", mode, "-w", "stop"])
            ),
            check=False,
            capture_output=True,
        )

    def create_database(self, database: str) -> None:
        self._client("createdb", database)

    def url(self, database: str) -> str:
        return f"postgres://postgres@{self.address}:{self.port}/{database}"

    def count(self, database: str, table: str) -> int:
        return int(self._client("psql", "-d", database, "-Atc", f"SELECT count(*) FROM {table}"))

    def _client(self, program: str, *args: str) -> str:
        """The output of one of PostgreSQL's client programs, run against this server."""
        command = [self.bin / program, "-h", self.address, "-p", str(self.port), "-U", "postgres"]
        done = subprocess.run([*command, *args], check=True, capture_output=True, text=True)
        return done.stdout.strip()


class Cluster:
    """Start with :meth:`start`, stop everything with :meth:`close`."""

    def __init__(
        self,
        scratch: Path,
        *,
        app_env: dict[str, str] | None = None,
        own_hosts: tuple[str, ...] = (),
    ) -> None:
        self.scratch = scratch
        scratch.chmod(0o755)  # the postgres user reaches its data directories through it
        # The servers in ``own_hosts`` get a test host each (root only: network namespaces).
        self.hosts = (
            {name: Host(index) for index, name in enumerate(own_hosts, start=1)}
            if os.geteuid() == 0
            else {}
        )
        self.servers = {name: Postgres(scratch, name, self.hosts.get(name)) for name in DATABASES}
        self.redis_port = live.free_port()
        self.web_ports = [live.free_port(), live.free_port()]
        self.nginx_port = live.free_port()
        self.url = f"http://127.0.0.1:{self.nginx_port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.token = ""
        self._stack = ExitStack()
        self.env = {
            **{key: value for key, value in os.environ.items() if not key.endswith("_URL")},
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "PYTHONPATH": str(ROOT),
            "SECRET_KEY": "cluster-" + secrets.token_hex(32),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "SECURE_HSTS_SECONDS": "0",
            "DATA_DIR": str(scratch / "data"),
            "STATIC_ROOT": str(scratch / "static"),
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CELERY_QUEUE": "store-cluster",
            "CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/1",
            "NUM_PROXIES": "1",
            "API_WRITE_RATE": "",
            "API_INGEST_RATE": "",
            "API_ANON_READ_RATE": "",
            "LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": "1",
            **{
                f"{name.upper()}_DATABASE_URL": server.url(f"store_{name}")
                for name, server in self.servers.items()
            },
            **(app_env or {}),
        }

    # --- the whole -------------------------------------------------------------------------

    def start(self) -> "Cluster":
        try:
            (self.scratch / "data").mkdir()
            for host in self.hosts.values():
                self._stack.callback(host.delete)
                host.create()
            for name, server in self.servers.items():
                server.init()
                self._stack.callback(server.stop, "immediate")  # even if start timed out
                server.start()
                server.create_database(f"store_{name}")
            self._spawn(
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
            )
            live.wait_until(
                lambda: live.listening(self.redis_port), "redis", self.processes["redis"]
            )
            self.manage("init_db", "-v", "0")
            self.manage("collectstatic", "--noinput", "-v", "0")
            self.token = self.manage("create_api_token", "cluster").split()[-1]
            for number in (1, 2):
                self.start_worker(number)
            for number, port in enumerate(self.web_ports, start=1):
                self.start_web(number, port)
            self._start_nginx()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for name in list(self.processes):
            self.stop_process(name)
        self._stack.close()

    # --- its parts ---------------------------------------------------------------------------

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def start_worker(self, number: int) -> None:
        self._spawn(
            f"worker{number}",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "-n",
                f"worker{number}@cluster",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
        )

    def start_web(self, number: int, port: int) -> None:
        name = f"web{number}"
        self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "-c",
                "config/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
            ],
        )
        live.wait_until(lambda: live.listening(port), name, self.processes[name])

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            live.stop(process, sig)

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.scratch / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _start_nginx(self) -> None:
        prefix = self.scratch / "nginx"
        prefix.mkdir()
        conf = NGINX_CONF.read_text()
        upstream = "".join(
            f"server 127.0.0.1:{port} max_fails=0;\n        " for port in self.web_ports
        )
        conf, found = re.subn(
            r"server api:8000 max_fails=0;\s*# cluster:[^\n]*\n\s*", upstream, conf
        )
        conf, listens = re.subn(r"listen 8080;", f"listen 127.0.0.1:{self.nginx_port};", conf)
        if (found, listens) != (1, 1):
            raise RuntimeError("deploy/nginx.conf lost the lines marked 'cluster:'")
        # Its temporary files (request bodies) in the scratch directory, not the system's.
        temporaries = "".join(
            f"    {kind}_temp_path {prefix / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = conf.replace("http {\n", "http {\n" + temporaries, 1)
        (prefix / "nginx.conf").write_text(conf)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / kind).mkdir()
            if os.geteuid() == 0:
                shutil.chown(prefix / kind, "nobody")
        self._spawn(
            "nginx",
            [
                "nginx",
                "-p",
                str(prefix),
                "-c",
                str(prefix / "nginx.conf"),
                "-e",
                "stderr",
                "-g",
                f"daemon off; pid {prefix}/nginx.pid; user nobody nogroup; error_log stderr warn;",
            ],
        )
        live.wait_until(lambda: live.listening(self.nginx_port), "nginx", self.processes["nginx"])

    def logs(self) -> str:
        """The last lines of every process's log (for a failing test's message)."""
        parts = []
        for path in sorted(self.scratch.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


def wait_for(predicate, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def killed(process: subprocess.Popen) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
