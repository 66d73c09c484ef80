from zelda_tui.core.idle_watch import IdleWatch


def test_alert_then_act_once_each_and_busy_resets():
    w = IdleWatch(threshold_percent=5, alert_after_s=60, act_after_s=120)
    assert w.feed(0, [90.0, 80.0]) is None
    assert w.feed(10, [2.0, 4.9]) is None          # idle starts (every GPU below 5 %)
    assert w.feed(69, [0.0, 0.0]) is None
    assert w.feed(70, [0.0, 0.0]) == "alert"
    assert w.feed(80, [0.0, 0.0]) is None          # said once
    assert w.idle_for(80) == 70
    assert w.feed(130, [0.0, 0.0]) == "act"
    w.acted_on()
    assert w.feed(500, [0.0, 0.0]) is None
    assert w.feed(501, [0.0, 50.0]) is None        # one busy GPU: not idle, start over
    assert w.feed(502, [0.0, 0.0]) is None
    assert w.feed(562, [1.0, 1.0]) == "alert"


def test_no_gpu_means_nothing_to_watch():
    w = IdleWatch(alert_after_s=0, act_after_s=0)
    assert w.feed(0, []) is None and w.feed(1000, []) is None


def test_act_without_a_separate_alert_when_both_thresholds_pass_at_once():
    w = IdleWatch(alert_after_s=10, act_after_s=10)
    assert w.feed(0, [0.0]) is None
    assert w.feed(10, [0.0]) == "act"
    w.acted_on()
    assert w.feed(20, [0.0]) is None


def test_act_repeats_until_the_action_was_carried_out():
    """A destroy that failed is asked for again at the next check, not lost."""
    w = IdleWatch(alert_after_s=10, act_after_s=20)
    assert w.feed(0, [0.0]) is None
    assert w.feed(10, [0.0]) == "alert"
    assert w.feed(20, [0.0]) == "act"
    assert w.feed(80, [0.0]) == "act"  # not acted on: ask again
    w.acted_on()
    assert w.feed(140, [0.0]) is None
