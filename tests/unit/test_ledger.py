import orjson

from fraudstream.ledger import Ledger


def tx(tid: str) -> bytes:
    return orjson.dumps({"transaction_id": tid, "amount": 1.0})


def score(tid: str, partition: int, offset: int, decision: str = "approve") -> bytes:
    return orjson.dumps({"transaction_id": tid, "decision": decision, "ingested_at_ms": 1000,
                         "partition": partition, "offset": offset})


def dead(partition: int, offset: int) -> bytes:
    return orjson.dumps({"partition": partition, "offset": offset, "error": "bad_amount"})


def test_balanced_ledger() -> None:
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)
    ledger.produced(tx("b"), 1, 0)
    ledger.produced(b"{broken", 0, 1)
    assert not ledger.complete
    ledger.observe("scores", score("a", 0, 0), 1010, 1010)
    ledger.observe("scores", score("b", 1, 0), 1020, 1020)
    ledger.observe("dlq", dead(0, 1), 1030, 1030)
    summary = ledger.summary()
    assert (summary["produced"], summary["scored"], summary["dead_lettered"]) == (3, 2, 1)
    assert summary["lost"] == 0 and summary["duplicates"] == 0 and ledger.complete


def test_an_output_seen_before_the_producer_ack_still_counts() -> None:
    ledger = Ledger()
    ledger.observe("scores", score("a", 2, 7), 1000, 1000)
    ledger.produced(tx("a"), 2, 7)
    assert ledger.complete and ledger.lost() == 0


def test_on_a_shared_topic_only_this_runs_records_count() -> None:
    ledger = Ledger(own_only=True)
    ledger.observe("scores", score("other", 0, 3), 1000, 1000)  # another producer's record
    ledger.observe("scores", score("a", 2, 7), 1000, 1000)  # ours, read before its ack
    ledger.produced(tx("a"), 2, 7)
    ledger.produced(tx("b"), 2, 8)
    assert ledger.scored == 1 and ledger.lost() == 1 and ledger.unmatched_outputs() == 1
    ledger.observe("scores", score("b", 2, 8), 1000, 1000)
    ledger.observe("scores", score("b", 2, 8), 1000, 1000)
    assert ledger.complete and ledger.scored == 2 and ledger.duplicates == 1


def test_loss_is_matched_by_position_not_by_transaction_id() -> None:
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)  # never answered: lost
    ledger.produced(tx("b"), 0, 1)
    ledger.produced(tx("a"), 0, 2)  # a second record with the same id, dead-lettered twice
    ledger.observe("scores", score("b", 0, 1), 1000, 1000)
    ledger.observe("dlq", dead(0, 2), 1000, 1000)
    ledger.observe("dlq", dead(0, 2), 1000, 1000)
    assert ledger.dead_letters == 1
    assert ledger.lost() == 1 and not ledger.complete
    assert ledger.duplicate_dead_letters == 1 and ledger.duplicates == 1


def test_a_score_naming_another_record_does_not_account_for_a_lost_one() -> None:
    # The old ledger matched by transaction id: a score of "a" at (0, 0) hid that the record
    # at (0, 5), also "a", got no answer at all.
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)
    ledger.produced(tx("a"), 0, 5)
    ledger.observe("scores", score("a", 0, 0), 1000, 1000)
    assert ledger.lost() == 1


def test_a_record_both_scored_and_dead_lettered_is_a_duplicate() -> None:
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)
    ledger.observe("scores", score("a", 0, 0), 1000, 1000)
    ledger.observe("dlq", dead(0, 0), 1000, 1000)
    summary = ledger.summary()
    assert summary["lost"] == 0
    assert summary["scored_and_dead_lettered"] == 1 and summary["duplicates"] == 1


def test_two_decisions_for_one_transaction_are_duplicates_and_conflicts_are_counted() -> None:
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)
    ledger.produced(tx("a"), 0, 1)  # a repeat that was scored instead of dead-lettered
    ledger.observe("scores", score("a", 0, 0, "approve"), 1000, 1000)
    ledger.observe("scores", score("a", 0, 1, "decline"), 1000, 1000)
    summary = ledger.summary()
    assert summary["lost"] == 0
    assert summary["duplicates"] == 1 and summary["conflicting_decisions"] == 1


def test_outputs_naming_no_produced_position_are_reported() -> None:
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)
    ledger.observe("scores", score("a", 0, 0), 1000, 1000)
    ledger.observe("scores", orjson.dumps({"transaction_id": "x", "decision": "approve"}),
                   1000, 1000)
    ledger.observe("dlq", dead(3, 99), 1000, 1000)
    assert ledger.summary()["unmatched_outputs"] == 2


def test_a_recreated_topic_starts_its_positions_over_without_hiding_a_loss() -> None:
    ledger = Ledger()
    ledger.produced(tx("old-0"), 0, 0)
    ledger.produced(tx("old-1"), 0, 1)
    ledger.observe("scores", score("old-0", 0, 0), 1, 1)
    ledger.observe("scores", score("old-1", 0, 1), 1, 1)
    ledger.new_incarnation()
    # New records at the same offsets: the old outputs naming (0, 0) and (0, 1) answer
    # nothing of the new topic.
    ledger.observe("scores", score("new-1", 0, 1), 2, 2)  # before its producer ack
    ledger.produced(tx("new-0"), 0, 0)
    ledger.produced(tx("new-1"), 0, 1)
    assert ledger.lost() == 1 and not ledger.complete  # new-0 has no output
    ledger.observe("scores", score("new-0", 0, 0), 3, 3)
    assert ledger.complete and ledger.duplicates == 0 and ledger.scored == 4
    # An old output read again (a replay of the old incarnation) is a duplicate of its own
    # record, not an answer to the new one.
    ledger.observe("scores", score("old-0", 0, 0), 4, 4)
    assert ledger.duplicates == 1 and ledger.scored == 4


def test_latency_runs_until_the_reader_saw_the_score_the_timeline_keeps_when_it_was_made() -> None:
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)
    # Ingested at 1,000 ms, appended by the worker at 1,020 ms, readable (committed) and read
    # at 1,045 ms: the user waited 45 ms.
    ledger.observe("scores", score("a", 0, 0), 1020, 1045)
    assert ledger.latencies_ms == [45]
    assert ledger.scored_at_ms == [(1020, 45)]


def test_the_measuring_heap_is_out_of_the_collectors_reach_only_while_measuring() -> None:
    import gc

    from fraudstream.ledger import quiet_collector

    before = gc.get_freeze_count()
    held = [{"record": i} for i in range(1000)]
    with quiet_collector():
        assert gc.get_freeze_count() >= before + len(held)
    assert gc.get_freeze_count() == 0
