"""The panel's model under what arrives wrong: a journal torn by a crash or holding lines of another
shape, a TrialStart that never reached the panel, and rewards the trainer rejects."""

from __future__ import annotations

import json

from ript.core.trial_identity import TrialIdentity
from ript.panel.state import PanelConfig, PanelState

TRIAL = TrialIdentity("it0002-g001-c003-k1-abcdef", "libero_spatial/0/init03", 2, 1, 4, "pick up the bowl")


def panel(tmp_path, **config) -> PanelState:
    return PanelState(PanelConfig(token="t", undo_window_s=0.0, marks_file=str(tmp_path / "marks.jsonl"), **config))


def test_a_torn_last_line_costs_only_itself(tmp_path):
    state = panel(tmp_path)
    state.on_trial_start(TRIAL)
    first = state.mark(TRIAL.trial_id, True)
    with state.path.open("a") as f:
        f.write('{"event": "published", "mark_id": "')  # the crash: half a line, no newline
    restarted = panel(tmp_path)
    second_trial = TrialIdentity("it0002-g001-c003-k2-abcdef", TRIAL.context_id, 2, 2, 4, TRIAL.instruction)
    restarted.on_trial_start(second_trial)
    second = restarted.mark(second_trial.trial_id, False)
    again = panel(tmp_path)
    assert {m.mark_id for m in again.marks} == {first.mark_id, second.mark_id}, "the mark after the torn line was lost"


def test_journal_lines_of_unexpected_shape_are_skipped_not_fatal(tmp_path):
    state = panel(tmp_path)
    state.on_trial_start(TRIAL)
    kept = state.mark(TRIAL.trial_id, True)
    with state.path.open("a") as f:
        for line in [
            "[1, 2]",
            '"text"',
            '{"no_event": 1}',
            '{"event": "mark"}',
            '{"event": "mark", "mark_id": 3}',
            '{"event": "mark", "mark_id": "x", "trial_id": "y", "success": true, "source": "operator", '
            '"iteration": 1, "context_id": "c", "marked_at": 0.0, "bogus": 1, "status": 5}',
            '{"event": "outcome", "trial_id": "z"}',
            "\x00\xff not utf8",
        ]:
            f.write(line + "\n")
    restarted = panel(tmp_path)
    assert kept.mark_id in {m.mark_id for m in restarted.marks}
    assert restarted.history()["iterations"] == []


def test_a_trial_whose_start_was_missed_is_adopted_from_the_trainer_status(tmp_path):
    state = panel(tmp_path)
    state.on_instruction(TRIAL.instruction)
    status = {
        "state": "collecting",
        "iteration": 2,
        "trial_id": TRIAL.trial_id,
        "context_id": TRIAL.context_id,
        "trial_index": 1,
        "group_size": 4,
        "message": f"started {TRIAL.trial_id}",
    }
    state.on_status(status)
    assert state.trial is not None and state.trial.trial_id == TRIAL.trial_id
    assert state.trial.instruction == TRIAL.instruction and state.trial.context_id == TRIAL.context_id
    state.mark(TRIAL.trial_id, True)  # markable: no 409
    # A late status for an earlier trial does not take the panel back to it.
    newer = TrialIdentity("it0002-g001-c003-k2-abcdef", TRIAL.context_id, 2, 2, 4, TRIAL.instruction)
    state.on_trial_start(newer)
    state.on_status(status)
    assert state.trial.trial_id == newer.trial_id


def test_history_shows_only_what_the_trainer_stored(tmp_path):
    state = panel(tmp_path)
    for n in range(50):  # a flood of rewards for trials that do not exist
        state.on_reward(f"forged-{n}", True, "simulator")
    state.on_trial_start(TRIAL)
    state.on_reward(TRIAL.trial_id, True, "simulator")  # the trainer will count this one...
    assert state.history()["iterations"] == [], "nothing is in the history before the trainer stores it"
    state.on_status({"state": "waiting_for_reset", "message": f"stored {TRIAL.trial_id} (reward 1)"})
    assert state.history()["iterations"] == [{"iteration": 2, "trials": 1, "success_rate": 1.0}]
    # An operator mark the trainer overrides (another judge's reward arrived first) is shown as such.
    second = TrialIdentity("it0002-g001-c003-k2-abcdef", TRIAL.context_id, 2, 2, 4, TRIAL.instruction)
    state.on_trial_start(second)
    mark = state.mark(second.trial_id, False)
    state.published(mark)
    state.on_status({"state": "waiting_for_reset", "message": f"stored {second.trial_id} (reward 1)"})
    assert mark.status == "overridden"
    assert state.history()["iterations"] == [{"iteration": 2, "trials": 2, "success_rate": 1.0}]
    restarted = panel(tmp_path)  # the confirmed history survives a restart
    assert restarted.history() == state.history()
    events = [json.loads(line)["event"] for line in state.path.read_text().splitlines()]
    assert events.count("outcome") == 2 and "overridden" in events
