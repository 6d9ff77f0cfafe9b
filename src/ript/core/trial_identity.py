"""Who a trial is, in one type: the trainer's ticket, the TrialStart message, the operator panel
and the run report all name a trial by these fields."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrialIdentity:
    trial_id: str
    """Unique over the run, e.g. "it0003-g001-c012-k2-5f3a" (the random tail: a restarted trainer
    never reuses an id)."""
    context_id: str
    """The context (initial state, language goal) the trial starts from; a group's K trials share it."""
    iteration: int
    """The RIPT iteration the trial is collected for."""
    trial_index: int
    """k of K within its group (an aborted trial is retried under the same k)."""
    group_size: int
    """K."""
    instruction: str
    """The language goal given to the policy."""


@dataclass(frozen=True)
class TrialTicket(TrialIdentity):
    """A trial as the trainer issues it: its identity, where it sits in the sampler, and the
    weights version that must act in it."""

    group_id: int
    context_index: int
    weights_version: int
    robot: str = ""
    """The robot the trial is issued to (its namespace, e.g. "robot2"; "" in a one-robot graph)."""
