"""Lethe's settings: the one module that reads environment variables."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from erasure.errors import ConfigurationError
from lineage.errors import PepperError


NEO4J_SCHEMES = {"bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"}


def _variable(loc: tuple) -> str:
    """The environment variable a validation error's location names (its alias)."""
    name = str(loc[0]) if loc else "?"
    field = Settings.model_fields.get(name)
    return (field.alias if field is not None and field.alias else name.upper())


class Settings(BaseSettings):
    """Connection and state settings; each field reads the environment variable named in its alias."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    state_dir: Path = Field(default=Path(".lethe"), alias="LETHE_STATE_DIR")
    neo4j_uri: str | None = Field(default=None, alias="NEO4J_URI")
    neo4j_user: str = Field(default="neo4j", alias="NEO4J_USER")
    neo4j_password: SecretStr | None = Field(default=None, alias="NEO4J_PASSWORD")
    neo4j_database: str = Field(default="neo4j", alias="NEO4J_DATABASE")
    local_bolt_port: int = Field(default=7687, ge=1024, le=65535, alias="LETHE_NEO4J_PORT")
    local_heap: str = Field(default="2g", alias="LETHE_NEO4J_HEAP")
    local_page_cache: str = Field(default="2g", alias="LETHE_NEO4J_PAGE_CACHE")
    pepper: SecretStr | None = Field(default=None, alias="LETHE_PEPPER")
    pepper_file: Path | None = Field(default=None, alias="LETHE_PEPPER_FILE")
    base_model: Path | None = Field(default=None, alias="LETHE_BASE_MODEL")
    batches_dir: Path | None = Field(default=None, alias="LETHE_BATCHES_DIR")
    # OpenLineage's own client reads its transport (OPENLINEAGE_URL, OPENLINEAGE_CONFIG, ...); Lethe only names
    # the namespace its jobs and datasets live in.
    openlineage_namespace: str = Field(default="lethe://default", min_length=1, alias="OPENLINEAGE_NAMESPACE")

    def __init__(self, **values) -> None:
        """Read the settings; a malformed one is a ConfigurationError naming the variable, never a pydantic dump."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = "; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False))
            raise ConfigurationError(f"a setting is not valid — {problems}; fix the environment variable") from None

    @field_validator("neo4j_uri")
    @classmethod
    def _bolt_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in NEO4J_SCHEMES or not rest.split("/")[0].split("@")[-1].strip(":"):
            raise ValueError(f"not a Neo4j URI; use {{{'|'.join(sorted(NEO4J_SCHEMES))}}}://HOST[:PORT], "
                             "e.g. neo4j://db.internal:7687, or unset it to use Lethe's own server")
        return value

    @property
    def uses_local_server(self) -> bool:
        """True when Lethe runs its own Neo4j (no NEO4J_URI given)."""
        return self.neo4j_uri is None

    @property
    def local_server_dir(self) -> Path:
        return self.state_dir / "neo4j"

    @property
    def content_store_path(self) -> Path:
        return self.state_dir / "content.sqlite"

    @property
    def record_batches_dir(self) -> Path:
        """Where the pipeline's `raw_records` reads JSONL/Parquet batches from."""
        return self.batches_dir or self.state_dir / "batches"

    @property
    def model_store_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def quarantine_dir(self) -> Path:
        return self.state_dir / "quarantine"

    @property
    def demo_pepper_path(self) -> Path:
        return self.state_dir / "demo-pepper"

    @property
    def dagster_home(self) -> Path:
        return (self.state_dir / "dagster").resolve()

    def child_environment(self) -> dict[str, str]:
        """The environment for a child process (e.g. the Dagster CLI) that must see these settings."""
        env = dict(os.environ)
        env.update({"LETHE_STATE_DIR": str(self.state_dir.resolve()), "DAGSTER_HOME": str(self.dagster_home),
                     "LETHE_NEO4J_PORT": str(self.local_bolt_port), "HF_HUB_OFFLINE": "1"})
        for name, value in (("LETHE_PEPPER_FILE", self.pepper_file), ("LETHE_BASE_MODEL", self.base_model),
                            ("LETHE_BATCHES_DIR", self.batches_dir), ("NEO4J_URI", self.neo4j_uri)):
            if value is not None:
                env[name] = str(Path(value).resolve()) if isinstance(value, Path) else str(value)
        return env

    def resolved_neo4j_uri(self) -> str:
        return self.neo4j_uri or f"bolt://127.0.0.1:{self.local_bolt_port}"

    def resolved_neo4j_password(self) -> str:
        """NEO4J_PASSWORD, else the local server's generated password."""
        if self.neo4j_password is not None:
            return self.neo4j_password.get_secret_value()
        if self.uses_local_server:
            return local_server_password(self.local_server_dir)
        raise ConfigurationError("NEO4J_URI is set but NEO4J_PASSWORD is not: set the server's password")

    def load_pepper(self) -> bytes:
        """The secret pepper for subject keys; Lethe refuses to run without one."""
        if self.pepper is not None:
            return _decode_pepper(self.pepper.get_secret_value(), "LETHE_PEPPER")
        if self.pepper_file is not None:
            if not self.pepper_file.is_file():
                raise PepperError(f"LETHE_PEPPER_FILE={self.pepper_file} does not exist")
            return _decode_pepper(self.pepper_file.read_text().strip(), f"LETHE_PEPPER_FILE={self.pepper_file}")
        raise PepperError(
            "no pepper: subject keys are HMACs under a secret pepper, and Lethe will not run without one. "
            "Set LETHE_PEPPER (64 hex chars) or LETHE_PEPPER_FILE (a file holding them, mode 600), e.g. "
            "`python -c 'import secrets; print(secrets.token_hex(32))' > pepper && chmod 600 pepper`. "
            "`lethe demo` makes its own under .lethe/demo-pepper."
        )


def _decode_pepper(text: str, where: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise PepperError(f"{where}: the pepper must be hex (e.g. 64 hex chars)") from None
    if len(raw) < 32:
        raise PepperError(f"{where}: the pepper has {len(raw)} bytes; use at least 32 (64 hex chars)")
    return raw


def write_secret_file(path: Path, nbytes: int = 32) -> str:
    """Create a file holding a random hex secret, owner-only (0600); keep an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(nbytes) + "\n")
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path.read_text().strip()


def local_server_password(server_dir: Path) -> str:
    """The generated password of the Neo4j server that Lethe runs (created on first use)."""
    return write_secret_file(server_dir / "password", 24)


def demo_settings(settings: Settings) -> Settings:
    """Settings for the demo: a generated pepper kept in the state folder with mode 600."""
    if settings.pepper is None and settings.pepper_file is None:
        write_secret_file(settings.demo_pepper_path)
        return settings.model_copy(update={"pepper_file": settings.demo_pepper_path})
    return settings
