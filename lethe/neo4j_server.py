"""The local Neo4j server: build the Maven launcher in docker/, start, stop and inspect it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lethe.errors import Neo4jServerError
from lethe.settings import Settings, local_server_password
from lineage.local_files import PRIVATE_UMASK, private_dir, tighten_tree

LAUNCHER_DIR = Path(__file__).resolve().parents[1] / "docker" / "neo4j-launcher"
LAUNCHER_CLASS = "io.lethe.neo4j.Launcher"
READY = re.compile(r"LETHE_NEO4J_READY (\S+) version=(\S+)")
MIN_JAVA = 17


@dataclass
class ServerStatus:
    running: bool
    uri: str
    pid: int | None = None
    version: str | None = None
    warm_up_s: float | None = None  # the page-cache warm-up after this start, when it ran


def _require_tool(name: str, what: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Neo4jServerError(
            f"`{name}` was not found on PATH: {what}. Install it (Debian/Ubuntu: "
            f"`apt-get install {'openjdk-17-jdk-headless' if name == 'java' else 'maven'}`), or run "
            "Neo4j with Docker (`docker compose -f docker/compose.yaml up -d`) and set NEO4J_URI, "
            "NEO4J_USER and NEO4J_PASSWORD."
        )
    return path


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise Neo4jServerError(f"could not read the Java version from `java -version`: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class LocalNeo4j:
    """The Neo4j 5.26 Community engine that Lethe runs itself, with data under the state folder."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.local_server_dir.resolve()
        self.port = settings.local_bolt_port
        self.pid_file = self.home / "launcher.pid"
        self.log_file = self.home / "launcher.log"

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    def _classpath(self) -> str:
        target = LAUNCHER_DIR / "target"
        return f"{target / 'lethe-neo4j-launcher.jar'}{os.pathsep}{target / 'lib' / '*'}"

    def build(self) -> None:
        """Build the launcher with Maven unless its jar is newer than its sources."""
        jar = LAUNCHER_DIR / "target" / "lethe-neo4j-launcher.jar"
        sources = [LAUNCHER_DIR / "pom.xml", *LAUNCHER_DIR.glob("src/**/*.java")]
        if not (LAUNCHER_DIR / "pom.xml").is_file():
            raise Neo4jServerError(f"the launcher project is missing: {LAUNCHER_DIR}/pom.xml")
        if jar.is_file() and all(s.stat().st_mtime <= jar.stat().st_mtime for s in sources):
            return
        mvn = _require_tool("mvn", "Maven builds the Neo4j launcher from Maven Central artifacts")
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(LAUNCHER_DIR / "pom.xml"), "package", "-DskipTests"],
            capture_output=True, text=True, timeout=1800,
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise Neo4jServerError("building the Neo4j launcher with Maven failed:\n" + "\n".join(tail))

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except FileNotFoundError:
            return None
        # Only a process that we started, for this home, counts as ours.
        return pid if LAUNCHER_CLASS in cmdline and str(self.home) in cmdline else None

    def status(self) -> ServerStatus:
        pid = self._pid()
        return ServerStatus(running=pid is not None and _port_open(self.port), uri=self.uri, pid=pid)

    def start(self, timeout_s: float = 180.0) -> ServerStatus:
        """Start the server if it is not running; wait until Bolt answers. Idempotent."""
        current = self.status()
        if current.running:
            return current
        if current.pid is not None:  # starting up, or hung: wait for it below
            return self._wait_ready(current.pid, timeout_s)
        java = _require_tool("java", f"the local Neo4j needs a Java {MIN_JAVA}+ runtime")
        if (major := _java_major(java)) < MIN_JAVA:
            raise Neo4jServerError(f"Java {major} found; Neo4j 5.26 needs Java {MIN_JAVA} or newer")
        if _port_open(self.port):
            raise Neo4jServerError(
                f"port {self.port} is taken by another process; set LETHE_NEO4J_PORT to a free port, "
                "or point NEO4J_URI at that server if it is a Neo4j you want to use")
        self.build()
        private_dir(self.home)
        tighten_tree(self.home)  # a store written by an older Lethe under a loose umask becomes owner-only too
        password_file = self.home / "password"
        local_server_password(self.home)
        cmd = [
            # -Xms = -Xmx: a heap that never resizes spends less on GC during bulk writes.
            java, f"-Xms{self.settings.local_heap}", f"-Xmx{self.settings.local_heap}", "-XX:+UseG1GC",
            "-cp", self._classpath(), LAUNCHER_CLASS,
            "--home", str(self.home), "--bolt-port", str(self.port), "--password-file", str(password_file),
            "--page-cache", self.settings.local_page_cache,
        ]
        with os.fdopen(os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, umask=PRIVATE_UMASK)  # the store holds keys
        with os.fdopen(os.open(self.pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as pid:
            pid.write(str(proc.pid))
        status = self._wait_ready(proc.pid, timeout_s)
        status.warm_up_s = self._warm_up()
        return status

    def _warm_up(self) -> float:
        """Read what the impact queries walk into the page cache (lineage.store.warmup); its seconds."""
        from lineage.store import GraphStore
        from lineage.store.warmup import warm_up

        with GraphStore.connect(self.uri, self.settings.neo4j_user, local_server_password(self.home),
                                self.settings.neo4j_database) as store:
            return warm_up(store)["total_s"]

    def _wait_ready(self, pid: int, timeout_s: float) -> ServerStatus:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            match = READY.search(log)
            if match and _port_open(self.port):
                return ServerStatus(True, self.uri, pid, match.group(2))
            if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
                tail = "\n".join(log.strip().splitlines()[-15:])
                self.pid_file.unlink(missing_ok=True)
                raise Neo4jServerError(f"the local Neo4j exited while starting; its log ({self.log_file}):\n{tail}")
            time.sleep(0.25)
        raise Neo4jServerError(f"the local Neo4j did not answer on {self.uri} within {timeout_s:.0f} s; "
                               f"see {self.log_file}")

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Stop the server this state folder started; returns False if none was running."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


    def import_full(self, arguments: list[str], report_dir: Path, heap: str = "2g") -> str:
        """Run Neo4j's offline importer (`neo4j-admin database import full`) into the stopped server's
        default database, replacing its files; returns the importer's summary. The caller checks that the
        database is empty first and stops the server."""
        if self._pid() is not None:
            raise Neo4jServerError("the local Neo4j is running; stop it before an offline import")
        java = _require_tool("java", f"the Neo4j importer needs a Java {MIN_JAVA}+ runtime")
        self.build()
        cmd = [java, f"-Xmx{heap}", "-cp", self._classpath(), "org.neo4j.cli.AdminTool",
               "database", "import", "full", "neo4j", "--overwrite-destination=true",
               "--bad-tolerance=0", "--skip-bad-relationships=false",
               "--skip-duplicate-nodes=false", f"--threads={max(1, os.cpu_count() or 1)}",
               f"--report-file={report_dir / 'import.report'}", *arguments]
        env = dict(os.environ, NEO4J_HOME=str(self.home), NEO4J_CONF=str(self.home / "conf"))
        (self.home / "conf").mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, umask=PRIVATE_UMASK)
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or "IMPORT DONE" not in output:
            # A failed import leaves the store files unusable; the caller checked the database was empty,
            # so removing them loses nothing and the next start creates an empty database again.
            self.drop_default_database_files()
            lines = [line for line in output.splitlines() if line.strip() and not line.startswith(("..", "-.."))]
            raise Neo4jServerError(f"the Neo4j importer failed (exit {proc.returncode}); the database is left "
                                   "empty:\n" + "\n".join(lines[-6:]))
        return output[output.index("IMPORT DONE"):].strip()

    def drop_default_database_files(self) -> None:
        """Remove the default database's store and transaction files (the server must be stopped)."""
        if self._pid() is not None:
            raise Neo4jServerError("the local Neo4j is running; stop it before removing database files")
        for folder in (self.home / "data" / "databases" / "neo4j", self.home / "data" / "transactions" / "neo4j"):
            if folder.exists():
                shutil.rmtree(folder)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return  # not our child (started by another `lethe` process): init reaps it
