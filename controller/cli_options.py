"""Options every `mlperf-controller` command takes, and the settings they resolve to.

Flags first, then environment (MLPERF_BROKER, MLPERF_DB, MLPERF_PREFIX, ...), then the config
file (~/.config/mlperf-edge/controller.yaml), then defaults. Secrets never come as flag values
(they would show in ``ps``): the broker password from a file or MLPERF_BROKER_PASSWORD, the
enrolment token from a file or MLPERF_ENROL_TOKEN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

LOGIN = "Broker login and keys"

Broker = Annotated[Optional[str], typer.Option(
    "--broker", envvar="MLPERF_BROKER",
    help="MQTT broker URL, mqtt://HOST[:1883] or mqtts://HOST[:8883] (default "
         "mqtt://localhost:1883).")]
Db = Annotated[Optional[str], typer.Option(
    "--db", envvar="MLPERF_DB",
    help="Results store: any SQLAlchemy URL, e.g. sqlite:///results.db or "
         "postgresql+psycopg://user@host/db (default: SQLite in "
         "~/.local/share/mlperf-edge/controller.db).")]
Prefix = Annotated[Optional[str], typer.Option(
    "--prefix", envvar="MLPERF_PREFIX", help="Topic prefix (default mlperf/v2).")]
ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", envvar="MLPERF_CONTROLLER_CONFIG",
    help="YAML file with any of these settings (default "
         "~/.config/mlperf-edge/controller.yaml).")]
Identity = Annotated[Optional[Path], typer.Option(
    "--identity", envvar="MLPERF_CONTROLLER_IDENTITY", rich_help_panel=LOGIN,
    help="The controller's signing key (made on first use; default "
         "~/.config/mlperf-edge/controller_ed25519).")]
TokenFile = Annotated[Optional[Path], typer.Option(
    "--enrol-token-file", envvar="MLPERF_ENROL_TOKEN_FILE", rich_help_panel=LOGIN,
    help="Approve devices that present this pre-shared token (default: "
         "~/.config/mlperf-edge/enrol-token when it exists, or MLPERF_ENROL_TOKEN).")]
BrokerUser = Annotated[Optional[str], typer.Option(
    "--broker-user", envvar="MLPERF_BROKER_USERNAME", rich_help_panel=LOGIN,
    help="User name at the broker (default: the URL's, if any).")]
PasswordFile = Annotated[Optional[Path], typer.Option(
    "--broker-password-file", envvar="MLPERF_BROKER_PASSWORD_FILE", rich_help_panel=LOGIN,
    help="File holding the broker password (or set MLPERF_BROKER_PASSWORD).")]
TlsCa = Annotated[Optional[Path], typer.Option(
    "--tls-ca", envvar="MLPERF_TLS_CA", rich_help_panel=LOGIN,
    help="CA certificate that signed the broker's (mqtts:// only).")]
TlsCert = Annotated[Optional[Path], typer.Option(
    "--tls-cert", envvar="MLPERF_TLS_CERT", rich_help_panel=LOGIN,
    help="Client certificate, for brokers that require one.")]
TlsKey = Annotated[Optional[Path], typer.Option(
    "--tls-key", envvar="MLPERF_TLS_KEY", rich_help_panel=LOGIN,
    help="The client certificate's private key.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AssignTimeout = Annotated[Optional[float], typer.Option(
    "--assign-timeout", envvar="MLPERF_ASSIGN_TIMEOUT", min=1,
    help="Seconds a device has to take a job it was sent before the job counts as lost (and "
         "is retried); default 120.")]
DispatchWindow = Annotated[Optional[int], typer.Option(
    "--dispatch-window", envvar="MLPERF_DISPATCH_WINDOW", min=1, max=1_000_000,
    help="At most this many jobs wait sent and not yet accepted by their device; a campaign "
         "over a large fleet goes out as acceptances come back (default 512).")]


def open_settings(config: Path | None = None, create: bool = True, **flags: Any):
    """(settings, store) from the flags every command takes. Commands that only read pass
    ``create=False``: a mistyped --db is an error, not a new empty store."""
    from controller.settings import resolve
    from controller.store import Store

    settings = resolve(flags, config)
    return settings, Store(settings.db, create=create)
Worker = Annotated[Optional[str], typer.Option(
    "--worker", envvar="MLPERF_WORKER",
    help="Serve as one of several workers named apart (e.g. a, b) on one PostgreSQL store: the "
         "broker shares the fleet's messages among them (MQTT shared subscriptions) and one "
         "at a time dispatches; stop or lose one and the others carry on.")]

