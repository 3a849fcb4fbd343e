"""``mlperf-controller devices``: the fleet, the devices waiting for approval, and what was
refused. Thin wiring to controller.fleet, the store and controller.views."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from controller.cli_options import (
    Broker,
    BrokerUser,
    ConfigFile,
    Db,
    Identity,
    Json,
    PasswordFile,
    Prefix,
    TlsCa,
    TlsCert,
    TlsKey,
    TokenFile,
    open_settings,
)

app = typer.Typer(
    help="List devices (with no sub-command), approve or revoke them, and see what was "
         "refused.\n\nA device joins when its `mlperf-agent start` connects: it waits here "
         "until `mlperf-controller devices approve NAME` (compare the key fingerprint with the "
         "one the agent printed), or joins at once with the lab's enrolment token "
         "(`mlperf-controller enrol-token`).",
    invoke_without_command=True, add_completion=False)


#: Devices waiting for approval shown by `devices` (the newest); `devices pending` shows all.
SHOWN_PENDING = 20
#: Past this many devices the list is plain fixed-width lines (a rich table of 10,000 rows
#: took 18 s to lay out).
RICH_UP_TO = 200


def _consoles() -> tuple[Console, Console]:
    from controller.cli import err, out
    return out, err


@app.callback()
def devices(ctx: typer.Context, broker: Broker = None, db: Db = None, prefix: Prefix = None,
            config: ConfigFile = None, identity: Identity = None,
            enrol_token_file: TokenFile = None, broker_user: BrokerUser = None,
            broker_password_file: PasswordFile = None, tls_ca: TlsCa = None,
            tls_cert: TlsCert = None, tls_key: TlsKey = None, as_json: Json = False) -> None:
    """List devices: online/offline, last seen, capabilities, load, approval. Reads the
    broker's live presence when it is reachable, else the store's last known state; shows the
    devices waiting for approval and a count of refused messages."""
    if ctx.invoked_subcommand is not None:
        return
    from agent.errors import BrokerUnavailable
    from controller import fleet, views

    out, err = _consoles()
    settings, store = open_settings(
        config, broker=broker, db=db, prefix=prefix, identity=identity,
        enrol_token_file=enrol_token_file, broker_user=broker_user,
        broker_password_file=broker_password_file, tls_ca=tls_ca, tls_cert=tls_cert,
        tls_key=tls_key)
    # A serving controller keeps its store current: read the fleet from it, not from every
    # agent's retained status again (at 10,000 agents that alone outran the 5 s barrier).
    serving = store.serving_recently()
    try:
        snap = fleet.snapshot(settings, store, retry_for_s=3.0, agents=not serving)
        if not snap.complete:
            err.print("the broker did not answer within 5 s: the list may lack devices whose "
                      "presence was still arriving", style="yellow", markup=False)
    except BrokerUnavailable as exc:
        err.print(f"{exc}; showing the last known state", style="yellow", markup=False)
    rows, pending = store.devices(plain=True), store.pending()
    if as_json:
        print(json.dumps([views.device_dict(d) for d in rows], indent=2))
        return
    if len(rows) > RICH_UP_TO:
        sys.stdout.write("".join(line + "\n" for line in views.devices_lines(rows)))
    elif rows:
        out.print(views.devices_table(rows))
    elif not pending:
        err.print("no devices yet: run `mlperf-agent start --broker URL` on each device",
                  markup=False)
    if pending:
        newest = sorted(pending, key=lambda r: r.last_seen, reverse=True)
        out.print(views.pending_table(newest[:SHOWN_PENDING]))
        if len(pending) > SHOWN_PENDING:
            err.print(f"... and {len(pending) - SHOWN_PENDING} more waiting: "
                      "`mlperf-controller devices pending`", markup=False)
    summary = views.rejection_summary(store.rejections())
    if summary:
        err.print(summary, style="yellow", markup=False)


@app.command()
def approve(name: Annotated[str, typer.Argument(help="The device's name or agent id.")],
            fingerprint: Annotated[Optional[str], typer.Option(
                "--fingerprint", help="The key to approve (SHA256:...), when the device waits "
                                      "with more than one.")] = None,
            db: Db = None, config: ConfigFile = None) -> None:
    """Approve a device waiting to join (or re-approve a revoked one): from now on, what it
    signs with that key is heard. Compare the fingerprint with the one `mlperf-agent start`
    printed on the device."""
    from agent.identity import fingerprint as fp_of

    _, err = _consoles()
    _, store = open_settings(config, db=db, create=False)
    dev = store.approve(name, fingerprint)
    err.print(f"approved {dev.name} ({dev.agent_id}), key {fp_of(dev.key)}", markup=False)


@app.command()
def revoke(name: Annotated[str, typer.Argument(help="The device's name or agent id.")],
           db: Db = None, config: ConfigFile = None) -> None:
    """Withdraw a device's approval: its messages are refused and it gets no jobs until it is
    approved again."""
    _, err = _consoles()
    _, store = open_settings(config, db=db, create=False)
    dev = store.revoke(name)
    err.print(f"revoked {dev.name} ({dev.agent_id})", markup=False)


@app.command()
def pending(db: Db = None, config: ConfigFile = None, as_json: Json = False,
            clear: Annotated[bool, typer.Option(
                "--clear", help="Forget every waiting request (a device asks again when its "
                                "agent next connects).")] = False) -> None:
    """Devices waiting for approval: name, agent id, key fingerprint, when they asked.

    At most 1,000 requests are kept; past that, new ones are refused (and counted) until
    some are approved or cleared."""
    from controller import views

    out, err = _consoles()
    _, store = open_settings(config, db=db, create=False)
    if clear:
        err.print(f"forgot {store.clear_pending()} waiting request(s)", markup=False)
        return
    rows = store.pending()
    if as_json:
        print(json.dumps([views.pending_dict(r) for r in rows], indent=2))
    elif rows:
        out.print(views.pending_table(rows))
    else:
        err.print("no device waits for approval", markup=False)


@app.command()
def refused(db: Db = None, config: ConfigFile = None, as_json: Json = False) -> None:
    """Messages the controller refused (by claimed sender and reason: bad signature, unknown
    key, expired, replayed, malformed, old schema) and what devices refused and why."""
    from controller import views

    out, _ = _consoles()
    _, store = open_settings(config, db=db, create=False)
    rows, told = store.rejections(), store.refusals()
    if as_json:
        print(json.dumps({"controller": [views.rejection_dict(r) for r in rows],
                          "devices": [views.refusal_dict(r) for r in told]}, indent=2))
        return
    for table in views.rejections_table(rows, told):
        out.print(table)
