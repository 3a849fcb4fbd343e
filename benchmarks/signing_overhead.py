"""What trust costs: signing and verifying each message, and the controller's message rate
with and without it.

1. Per message, for a heartbeat (~300 B) and a full job result (~4 KB): encode (the unsigned
   body) vs seal (body + Ed25519 signature), decode vs the agent's/controller's gate (envelope,
   key, signature, expiry, nonce, body). Microseconds each, median of ``--rounds``.
2. The controller's heartbeat path in this process, as a fleet drives it: decode + store
   write (what an unsigned controller did) vs gate + store write (what it does now), on
   SQLite, for ``--messages`` heartbeats from 100 agents. Messages per second and the ratio.

    python benchmarks/signing_overhead.py [--rounds 5] [--messages 2000]

Printed as ratios (signed / unsigned); nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.envelope import decode, encode, seal  # noqa: E402
from agent.identity import Identity  # noqa: E402
from agent.protocol import AgentStatus, Heartbeat, JobResult, Sequence, Topics  # noqa: E402
from controller.store import Store  # noqa: E402
from controller.trust import FleetTrust  # noqa: E402

seq = Sequence()
T = Topics("bench/v2")


def per_call_us(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def heartbeat(agent: str) -> Heartbeat:
    return Heartbeat(agent_id=agent, boot=1, session="ab" * 8, cpu_percent=37.5,
                     memory_percent=41.0, temperature_c=55.0, **seq())


def big_result() -> JobResult:
    payload = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
    return JobResult(job_id="c1-0001", result_id="r" * 32, agent_id="pi-5", campaign_id="c1",
                     benchmark="ncf", mode="smoke", run_index=1, status="failed",
                     started_at=1.0, finished_at=2.0, error=payload.read_text()[:4000], **seq())


def codec_costs(rounds: int, n: int = 2000) -> None:
    key = Identity.generate()
    print(f"{'message':<12}{'bytes':>7}{'encode':>9}{'seal':>9}{'ratio':>7}"
          f"{'decode':>9}{'admit':>9}{'ratio':>7}   (us per message, median of {rounds})")
    for name, message, topic in (("heartbeat", heartbeat("pi-5"), T.agent_heartbeat("pi-5")),
                                 ("result", big_result(), T.job_result("pi-5", "c1-0001"))):
        body, sealed = encode(message), seal(message, topic, key)
        kind = type(message)

        class Trusting(FleetTrust):
            def known_key(self, topic, env):
                return True

        gate = Trusting(None, T, key)
        gate.nonces.limit = 10 ** 7
        enc = statistics.median(per_call_us(lambda: encode(message), n) for _ in range(rounds))
        sig = statistics.median(per_call_us(lambda: seal(message, topic, key), n // 4)
                                for _ in range(rounds))
        dec = statistics.median(per_call_us(lambda: decode(kind, body), n)
                                for _ in range(rounds))
        payloads = [seal(message, topic, key) for _ in range(n // 4 * rounds)]
        it = iter(payloads)
        adm = statistics.median(per_call_us(lambda: gate.admit(topic, next(it), kind), n // 4)
                                for _ in range(rounds))
        print(f"{name:<12}{len(sealed):>7}{enc:>9.1f}{sig:>9.1f}{sig / enc:>7.1f}"
              f"{dec:>9.1f}{adm:>9.1f}{adm / dec:>7.1f}")


def controller_rate(messages: int, agents: int = 100) -> None:
    keys = {f"pi-{i}": Identity.generate() for i in range(agents)}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        for agent, key in keys.items():
            store.enrol(AgentStatus(agent_id=agent, name=agent, state="online", boot=1,
                                    session="ab" * 8, heartbeat_s=5, **seq()),
                        key.public_b64, "bench")
        me = Identity.generate()
        trust = FleetTrust(store, T, me)
        beats = [heartbeat(f"pi-{i % agents}") for i in range(messages)]
        bodies = [(T.agent_heartbeat(b.agent_id), encode(b)) for b in beats]
        sealed = [(t, seal(b, t, keys[b.agent_id])) for (t, _), b in zip(bodies, beats)]

        started = time.perf_counter()
        for _topic, body in bodies:
            store.heartbeat(decode(Heartbeat, body))
        unsigned = messages / (time.perf_counter() - started)
        beats2 = [heartbeat(f"pi-{i % agents}") for i in range(messages)]   # newer seqs
        sealed = [(T.agent_heartbeat(b.agent_id), seal(b, T.agent_heartbeat(b.agent_id),
                                                       keys[b.agent_id])) for b in beats2]
        started = time.perf_counter()
        for topic, payload in sealed:
            store.heartbeat(trust.admit(topic, payload, Heartbeat))
        signed = messages / (time.perf_counter() - started)
        store.close()
    print(f"controller heartbeat path, {messages} heartbeats from {agents} agents (SQLite): "
          f"unsigned {unsigned:,.0f}/s, signed {signed:,.0f}/s, ratio signed/unsigned "
          f"{signed / unsigned:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    codec_costs(args.rounds)
    controller_rate(args.messages)


if __name__ == "__main__":
    main()
