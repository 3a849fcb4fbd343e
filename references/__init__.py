"""The MLPerf training problems, each a dataset, a model and a quality target.

Run one with ``python -m references run NAME --mode smoke|reduced|full``. Nothing here knows of
MQTT, agents or controllers; :mod:`references.registry` is importable without torch.
"""
