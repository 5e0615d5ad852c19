"""Property-based testing of the REST API from its own OpenAPI document (Schemathesis).

Every operation gets generated requests — valid and invalid — with a fixed seed and a bounded number
of examples, so the run is repeatable and takes well under a minute on SQLite. The checks: no 5xx,
every status code documented, every response body, header and content type as the document says.
Requests carry a grid worker's token; path parameters are sometimes real reference numbers of cases
in the worker's grid, so actions reach the workflow and not only the "not found" answer.

Phases: the document's examples, the coverage phase (boundary and invalid values, a finite
deterministic set) and random generation (``MAX_EXAMPLES`` per operation); stateful runs are off.

The schema is the document the application serves (built without a request), loaded at import so
that pytest parametrizes one test per operation; requests go to the test application over WSGI.
(Schemathesis 4.32's lazy ``from_fixture`` loader reads ``request.node._nodeid``, which pytest 9 no
longer has.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.openapi import build_spec
from tests.factories import make_case
from tests.test_api import token_for

SEED = 20261125
MAX_EXAMPLES = 60
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "suppress-health-check": ["all"],
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "mode": "all"},
        "phases": {"stateful": {"enabled": False}},
    }
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: reference numbers of real cases, filled per test by the ``real_cases`` fixture
REAL_REFS: list[str] = []

schema = schemathesis.openapi.from_dict(build_spec(), config=CONFIG)


@schema.hook("flatmap_path_parameters")
def real_refs_too(_context, path_parameters):
    if not path_parameters or "ref" not in path_parameters or not REAL_REFS:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, *({"ref": ref} for ref in REAL_REFS)])


@pytest.fixture
def real_cases(app):
    refs = [make_case(state) for state in ("grid_assigned", "grid_handling", "firm_processing", "awaiting_signoff")]
    REAL_REFS[:] = refs
    yield refs
    REAL_REFS.clear()


@schema.parametrize()
def test_the_api_keeps_its_openapi_promises(case, app, real_cases):
    token = token_for(app, "grid1")
    case.call_and_validate(
        app=app, headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"}, checks=CHECKS
    )
