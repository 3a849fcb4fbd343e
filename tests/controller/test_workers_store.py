"""controller.workers on SQLite and PostgreSQL: one lead at a time, taken over when it lapses or
is dropped; silence waits for the slowest live worker's writes."""

from controller.store import Store


def test_one_worker_holds_the_lead_until_it_lapses_or_is_dropped(store: Store):
    assert store.take_lead("w-a", ttl_s=10, now=100.0)
    assert not store.take_lead("w-b", ttl_s=10, now=105.0)          # a holds it
    assert store.take_lead("w-a", ttl_s=10, now=108.0)              # a renews: to 118
    assert not store.take_lead("w-b", ttl_s=10, now=117.0)
    assert store.take_lead("w-b", ttl_s=10, now=118.5)              # lapsed: b takes it
    assert store.lead_holder(now=119.0) == "w-b"
    assert not store.take_lead("w-a", ttl_s=10, now=119.0)
    store.drop_lead("w-a")                                          # not a's to drop
    assert store.lead_holder(now=119.0) == "w-b"
    store.drop_lead("w-b")
    assert store.lead_holder(now=119.0) is None
    assert store.take_lead("w-a", ttl_s=10, now=119.0)


def test_silence_waits_for_the_slowest_live_worker(store: Store):
    assert store.heard_through_all(alive_s=10, now=100.0) is None    # no worker yet
    store.worker_heard("w-a", 95.0, now=100.0)
    store.worker_heard("w-b", None, now=100.0)                       # no echo back yet
    assert store.heard_through_all(alive_s=10, now=101.0) is None
    store.worker_heard("w-b", 90.0, now=101.0)
    assert store.heard_through_all(alive_s=10, now=101.0) == 90.0
    store.worker_heard("w-a", 104.0, now=112.0)                      # b went quiet at 101
    assert store.heard_through_all(alive_s=10, now=112.0) == 104.0
    assert store.workers(alive_s=10, now=112.0) == 1
