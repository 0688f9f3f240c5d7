"""The scheduler: a pure decision core (``decide``) and, around it, a thin async loop.

Pure modules (no I/O, no clock, no randomness; time is an input): ``states`` (states and the
transition table), ``trigger_rules``, ``retries``, ``timetable``, ``model`` (Snapshot and
Action dataclasses), ``decide``, ``clear`` (clear/mark) and ``report`` (worker reports).
"""
