"""Time limits: working calendar, deadlines, the escalation sweep, the scheduler."""
