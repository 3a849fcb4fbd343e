"""The lab workstation's side of mlperf-edge.

It uses the agent package only through this shared surface (a test keeps it so): the wire
contract, the MQTT link, the trust gate and identities, the error tree, the settings-file
reader, device profiles and container platforms (for image builds). Nothing of the agent's
job running.
"""

SHARED_SURFACE = frozenset({
    "agent.protocol", "agent.envelope", "agent.link", "agent.gate", "agent.identity",
    "agent.errors", "agent.display", "agent.settings", "agent.settings_file",
    "agent.profiles.loading", "agent.profiles.schema", "agent.platforms",
})
