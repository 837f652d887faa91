"""How long migration 0009 takes to partition an existing database, and the pruning after.

Builds a throwaway database at revision 0008 (tables not partitioned), seeds
``--lessons`` lessons of 500 students (540,000 face events and frames each, as
``bench.analytics_queries`` does), times ``upgrade`` to head, checks that every
row is still there, and prints the generic plan of a class timeline's rollup
read (a prepared statement, as asyncpg runs it), which prunes at execution.
Usage:

    python -m bench.partition_migration [--server postgresql://postgres@127.0.0.1:5432/postgres]
                                        [--lessons 2] [--students 500]
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy import text

from bench.analytics_queries import create_database, drop_database, seed_lessons
from shared.db.engine import make_sync_engine
from shared.db.migrate import upgrade

COUNTS = "SELECT (SELECT count(*) FROM frames), (SELECT count(*) FROM face_events)"
ROLLUP_READ = """PREPARE rollup_read(uuid, timestamptz, timestamptz) AS
SELECT r.student_id, r.frames FROM face_event_minutes r
WHERE r.lesson_id = $1 AND r.minute >= $2 AND r.minute < $3"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--lessons", type=int, default=2)
    parser.add_argument("--students", type=int, default=500)
    args = parser.parse_args()
    settings = argparse.Namespace(
        students=args.students, minutes=90, interval=5, per_day=4, revision="0008", runs=0
    )
    url = create_database(args.server, "0008")
    try:
        engine = make_sync_engine(url)
        lessons = seed_lessons(engine, 0, args.lessons, settings)
        with engine.connect() as conn:
            before = tuple(conn.execute(text(COUNTS)).one())
        started = time.perf_counter()
        upgrade(url)
        took = time.perf_counter() - started
        with engine.connect() as conn:
            after = tuple(conn.execute(text(COUNTS)).one())
            assert after == before, (before, after)
            conn.execute(text(ROLLUP_READ))
            conn.execute(text("SET plan_cache_mode = force_generic_plan"))
            seeded = lessons[-1][0]
            # EXECUTE takes no bound parameters: a uuid and two ISO times, quoted.
            values = (seeded.lesson_id, seeded.at(0).isoformat(), seeded.at(90 * 60).isoformat())
            plan = conn.execute(
                text("EXPLAIN EXECUTE rollup_read('{}', '{}', '{}')".format(*values))
            ).scalars()
            plan_text = "\n".join(plan)
        engine.dispose()
        print(
            f"0008 -> head with {before[1]:,} face events and {before[0]:,} frames: "
            f"{took:.1f} s ({before[1] / took:,.0f} events/s, frames alike)"
        )
        print("generic plan of a lesson's rollup read:\n" + plan_text)
    finally:
        drop_database(args.server, url)


if __name__ == "__main__":
    main()
