"""REST API list calls at a million cases versus a thousand: keyset pages cost the same."""

from __future__ import annotations

import os

from sqlalchemy import event, select, text

from bench.common import BENCH_PG, make_app, summary, timer

SMALL_PG = os.environ.get("BENCH_SMALL_DATABASE_URL", BENCH_PG.rsplit("/", 1)[0] + "/ksm_bench_small")
USERS = ("grid1", "firm1", "supervisor1", "street1", "admin")


def _tokens(app) -> dict[str, str]:
    from app.auth.models import User
    from app.auth.services import create_token
    from app.extensions import db

    with app.app_context():
        tokens = {}
        for username in USERS:
            user = db.session.scalar(select(User).where(User.username == username))
            tokens[username] = create_token(user, "bench")[1]
        db.session.commit()
        return tokens


def _measure(app, repeats: int = 30) -> dict:
    from app.extensions import db

    tokens = _tokens(app)
    client = app.test_client()
    out = {}
    statements = []
    with app.app_context():
        engine = db.engine

    def count(*_args):
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for username, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"}
            first = client.get("/api/v1/cases?limit=25", headers=headers)
            assert first.status_code == 200, first.get_data(as_text=True)
            cursor = first.get_json().get("next_cursor")
            # walk 20 pages deep, then time a page there
            for _ in range(20):
                if not cursor:
                    break
                cursor = client.get(f"/api/v1/cases?limit=25&cursor={cursor}", headers=headers).get_json()[
                    "next_cursor"
                ]
            samples_first, samples_deep, samples_open = [], [], []
            for _ in range(repeats):
                with timer() as took:
                    client.get("/api/v1/cases?limit=25", headers=headers)
                samples_first.append(took["ms"])
                if cursor:
                    with timer() as took:
                        client.get(f"/api/v1/cases?limit=25&cursor={cursor}", headers=headers)
                    samples_deep.append(took["ms"])
                with timer() as took:
                    client.get("/api/v1/cases?limit=25&state=open", headers=headers)
                samples_open.append(took["ms"])
            statements.clear()
            client.get("/api/v1/cases?limit=100", headers=headers)
            queries_100 = len(statements)
            statements.clear()
            client.get("/api/v1/cases?limit=5", headers=headers)
            out[username] = {
                "first": summary(samples_first),
                "deep": summary(samples_deep) if samples_deep else None,
                "open": summary(samples_open),
                "queries_limit_100": queries_100,
                "queries_limit_5": len(statements),
            }
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return out


def _plan(app) -> str:
    from app.auth.models import User
    from app.auth.permissions import scope_clause
    from app.cases.models import Case
    from app.extensions import db

    with app.app_context():
        grid1 = db.session.scalar(select(User).where(User.username == "grid1"))
        query = (
            select(Case.id).where(scope_clause(grid1, Case)).order_by(Case.created_at.desc(), Case.id.desc()).limit(26)
        )
        compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
        return "\n".join(r[0] for r in db.session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}")))


def run(big_app=None) -> dict:
    from bench.generate import generate

    big_app = big_app or make_app(BENCH_PG)
    generate(1000, 100, SMALL_PG)
    small_app = make_app(SMALL_PG)
    result = {"million": _measure(big_app), "thousand": _measure(small_app), "plan": _plan(big_app)}
    result["markdown"] = render(result)
    return result


def render(r: dict) -> str:
    lines = [
        "## REST API list calls: a million cases versus a thousand (PostgreSQL)",
        "",
        "`GET /api/v1/cases?limit=25` through the Flask test client (authentication, scope, query, JSON), "
        "p50 / p95 in ms over 30 calls. *Deep* is a page 20 pages into the keyset cursor; *open* filters "
        "`state=open`. The last columns count SQL statements for a page of 100 and of 5.",
        "",
        "| user (scope) | 1M first | 1k first | 1M deep | 1M open | 1k open | queries (100 / 5) |",
        "|---|---|---|---|---|---|---|",
    ]
    for user, big in r["million"].items():
        small = r["thousand"][user]
        deep = f"{big['deep']['p50']:.1f} / {big['deep']['p95']:.1f}" if big["deep"] else "—"
        lines.append(
            f"| {user} | {big['first']['p50']:.1f} / {big['first']['p95']:.1f} | "
            f"{small['first']['p50']:.1f} / {small['first']['p95']:.1f} | {deep} | "
            f"{big['open']['p50']:.1f} / {big['open']['p95']:.1f} | {small['open']['p50']:.1f} / "
            f"{small['open']['p95']:.1f} | {big['queries_limit_100']} / {big['queries_limit_5']} |"
        )
    lines += ["", "Plan of a grid worker's page at a million cases:", "", "```", r["plan"], "```"]
    return "\n".join(lines)
