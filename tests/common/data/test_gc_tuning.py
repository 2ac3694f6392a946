"""The collector's threshold is raised while batches run and put back after the last one."""

import gc
import threading

from common.data.gc_tuning import BATCH_THRESHOLD, fewer_collections


def test_the_threshold_is_raised_inside_and_restored_after():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] == max(before[0], BATCH_THRESHOLD)
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before


def test_overlapping_batches_restore_the_original_threshold_only_at_the_end():
    before = gc.get_threshold()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first_batch():
        with fewer_collections():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    thread = threading.Thread(target=first_batch)
    thread.start()
    first_in.wait(5)
    with fewer_collections():
        second_in.set()
        first_out.wait(5)
        assert gc.get_threshold()[0] == max(before[0], BATCH_THRESHOLD)  # still raised
    thread.join(5)
    assert gc.get_threshold() == before


def test_a_disabled_threshold_is_left_alone():
    before = gc.get_threshold()
    gc.set_threshold(0)
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
