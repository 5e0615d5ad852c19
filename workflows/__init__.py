"""Case workflows as data, and the engine that runs them on ``transitions``.

Pure Python: nothing here imports Flask or SQLAlchemy, so the definitions can be read, tested and
drawn on their own.
"""

WORKFLOW_LABELS = {
    "standard": {"zh": "标准流程（网格员→物业→居民）", "en": "Standard (grid worker → firm → resident)"},
    "onsite": {"zh": "现场处置（网格员可直接办结）", "en": "On-site (grid worker may resolve directly)"},
    "predeliberation": {"zh": "先议事项（支部先议→物业）", "en": "Pre-deliberation (party branch → firm)"},
}
