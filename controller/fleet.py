"""The fleet as the broker knows it right now: every agent's retained status and whether a
controller is dispatching. Read with a short-lived connection; the store is brought up to date."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from agent.link import Link
from agent.protocol import AgentStatus, ControllerStatus, Topics
from controller.errors import CampaignError
from controller.models import Device
from controller.settings import ControllerSettings
from controller.store import Store
from controller.trust import FleetTrust


@dataclass
class Snapshot:
    agents: dict[str, AgentStatus] = field(default_factory=dict)
    controller: ControllerStatus | None = None
    foreign_controller: str | None = None     # why a controller presence was refused
    complete: bool = True                     # False: the broker's barrier timed out
    read_agents: bool = True                  # False: the serving controller's store is current

    @property
    def controller_online(self) -> bool:
        return self.controller is not None and self.controller.state == "online"


def short_link(settings: ControllerSettings, store: Store) -> Link:
    """A clean-session link with a unique id, for one command's brief look at the broker:
    it signs with the controller's key and hears only what controller.trust admits."""
    identity = settings.load_identity()
    topics = Topics(settings.prefix)
    trust = FleetTrust(store, topics, identity, settings.enrol_token())
    link = Link(settings.broker_connection(), f"mlperf-cli-{os.getpid()}-{secrets.token_hex(3)}",
                topics, identity=identity, gate=trust)
    link.on_refused.append(trust.count)
    return link


def snapshot(settings: ControllerSettings, store: Store, retry_for_s: float = 10.0,
             agents: bool = True, barrier_s: float = 5.0) -> Snapshot:
    """Connect, read retained presence (up to an ordering barrier), update the store with
    what is news from approved devices (others wait for approval, see controller.trust).
    ``agents=False`` reads only the controller's presence: where a controller is serving, its
    store is the fleet (reading 10,000 retained statuses into it again took a command past
    its barrier). ``complete`` says whether the barrier came back within ``barrier_s``."""
    topics = Topics(settings.prefix)
    seen = Snapshot(read_agents=agents)
    link = short_link(settings, store)

    def on_status(topic: str, status: AgentStatus) -> None:
        if topics.parse(topic).agent_id == status.agent_id:
            seen.agents[status.agent_id] = status
            store.device_status(status)

    def on_controller(_topic: str, status: ControllerStatus) -> None:
        seen.controller = status

    def on_refused(exc) -> None:
        if getattr(exc, "code", None) == "foreign-controller":
            seen.foreign_controller = str(exc)

    if agents:
        link.route(topics.all_agent_status(), AgentStatus, on_status)
    link.route(topics.controller_status(), ControllerStatus, on_controller)
    link.on_refused.append(on_refused)
    link.connect(retry_for_s)
    try:
        seen.complete = link.barrier(barrier_s)
    finally:
        link.close()
        link.gate.flush()
    return seen


def select_devices(selector: str, devices: list[Device], benchmarks: list[str]) -> list[Device]:
    """Resolve ``all``, ``tag:T``, ``profile:P`` or ``NAME,NAME`` to online devices that offer
    the benchmarks."""
    online = [d for d in devices if d.state == "online" and d.key]
    selector = selector.strip()
    if selector == "all":
        chosen = online
        if not chosen:
            raise CampaignError("no device is online; start one with "
                                "`mlperf-agent start --broker URL` (see `mlperf-controller devices`)")
    elif selector.startswith("profile:"):
        name = selector[len("profile:"):]
        chosen = [d for d in online if (d.capabilities or {}).get("profile") == name]
        if not chosen:
            have = sorted({p for d in online if (p := (d.capabilities or {}).get("profile"))})
            raise CampaignError(f"no online device has profile {name!r} "
                                f"(profiles online: {', '.join(have) or 'none'})")
    elif selector.startswith("tag:"):
        tag = selector[4:]
        chosen = [d for d in online if tag in (d.tags or [])]
        if not chosen:
            tags = sorted({t for d in online for t in (d.tags or [])})
            raise CampaignError(f"no online device has tag {tag!r} "
                                f"(tags online: {', '.join(tags) or 'none'})")
    else:
        by_key = {d.name: d for d in devices} | {d.agent_id: d for d in devices}
        chosen = []
        for name in (n.strip() for n in selector.split(",") if n.strip()):
            dev = by_key.get(name)
            if dev is None:
                known = ", ".join(sorted(d.name for d in devices)) or "none"
                raise CampaignError(f"no device named {name!r} (known: {known})")
            if not dev.key:
                raise CampaignError(f"device {name!r} is not approved"
                                    f"{f' ({dev.reason})' if dev.reason else ''}: "
                                    f"`mlperf-controller devices approve {name}`")
            if dev.state != "online":
                raise CampaignError(f"device {name!r} is offline"
                                    f"{f' ({dev.reason})' if dev.reason else ''}")
            if dev not in chosen:
                chosen.append(dev)
        if not chosen:
            raise CampaignError("--devices is empty: use all, tag:TAG, profile:PROFILE or "
                                "NAME[,NAME...]")
    for dev in chosen:
        offered = (dev.capabilities or {}).get("benchmarks", [])
        missing = [b for b in benchmarks if b not in offered]
        if missing:
            raise CampaignError(f"device {dev.name!r} does not offer {', '.join(missing)} "
                                f"(it offers: {', '.join(offered) or 'nothing'})")
    return chosen


def images_for(devices: list[Device], images: dict[str | None, str],
               pin=None) -> dict[str, tuple[str, str]]:
    """Agent id -> (image, pinned sha256), from ``--image REF`` (key None: every device) and
    ``--image PROFILE=REF`` (devices of that profile). A device with neither runs natively.
    Each image is pinned once (``pin``, default controller.images.distribute.pin)."""
    if pin is None:
        from controller.images.distribute import pin
    chosen, pins = {}, {}
    for dev in devices:
        ref = images.get((dev.capabilities or {}).get("profile"), images.get(None))
        if ref is not None:
            if ref not in pins:
                pins[ref] = pin(ref)
            chosen[dev.agent_id] = (ref, pins[ref])
    return chosen
