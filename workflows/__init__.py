"""Case workflows as data, and the engine that runs them on ``transitions``.

Pure Python: nothing here imports Flask or SQLAlchemy, so the definitions can be read, tested and
drawn on their own. The application binds loaded cases to the shared machines through
:func:`workflows.engine.get_engine`.
"""

from workflows.definitions import (  # noqa: F401
    CLOSING_RESOLUTIONS,
    OPEN_STATES,
    STATES,
    TRIGGERS,
    WORKFLOW_LABELS,
    WORKFLOWS,
    Input,
    State,
    Transition,
    Trigger,
    Workflow,
)
