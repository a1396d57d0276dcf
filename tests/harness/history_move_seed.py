"""Seeding and checking helpers for the history_move tests and benchmark.

``seed`` fills a main database with rows of the four moved tables spread over
time (every row distinct), including one second holding more rows than a small
step and one (second, module) pair bigger than it; ``snapshot`` reads every
row (all columns) of both databases; ``assert_conserved`` checks that main and
history together hold exactly the original rows, none on both sides, and that
no row younger than the cutoff left main.
"""

import collections

from harness.maint_seed import DAY, NOW, tconfig

MOVED = ("tagente_datos", "tagente_datos_string", "tevento", "tevent_extended", "tevent_comment", "ttrap")


def link(main, history, days=30, step=50, delay=0, events=True, traps=True, **extra):
    """Main tconfig history tokens pointing at ``history`` (reference 8.1)."""
    from harness.mariadb import ROOT_PASSWORD
    tokens = dict(history_db_enabled=1, history_db_host="127.0.0.1", history_db_port=history.server.port,
                  history_db_user="root", history_db_pass=ROOT_PASSWORD, history_db_name=history.name,
                  history_db_days=days, history_db_step=step, history_db_delay=delay,
                  history_event_enabled=1 if events else 0, history_trap_enabled=1 if traps else 0,
                  history_event_days=days, history_trap_days=days)
    tokens.update(extra)
    tconfig(main, **tokens)


def seed(db, data=1500, strings=200, events=150, traps=100, big_second=120, span_days=60):
    """Rows from NOW - span_days to NOW, evenly; returns nothing (read them back with snapshot)."""
    span = span_days * DAY
    q = db.query
    q("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) SELECT 1 + seq MOD 17,"
      " IF(seq MOD 97 = 0, NULL, seq * 1.25 + 0.1), %s + seq * %s FROM seq_1_to_" + str(data),
      (NOW - span, span // data))
    # one second with many rows: some modules, and one module with many rows of its own
    q("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) SELECT 100 + seq MOD 7, seq + 0.5, %s"
      " FROM seq_1_to_" + str(big_second), (NOW - 45 * DAY,))
    q("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) SELECT 200, seq + 0.75, %s"
      " FROM seq_1_to_" + str(big_second), (NOW - 44 * DAY,))
    q("INSERT INTO tagente_datos_string (id_agente_modulo, datos, utimestamp) SELECT 1 + seq MOD 5,"
      " IF(seq MOD 50 = 0, NULL, CONCAT('v', seq, REPEAT('x', seq MOD 9))), %s + seq * %s FROM seq_1_to_"
      + str(strings), (NOW - span, span // strings))
    q("INSERT INTO tevento (id_evento, id_agente, utimestamp, `timestamp`, evento, event_type, tags)"
      " SELECT seq, seq MOD 11, %s + seq * %s, FROM_UNIXTIME(%s + seq * %s), CONCAT('event ', seq),"
      " 'system', IF(seq MOD 3 = 0, NULL, 'tag') FROM seq_1_to_" + str(events),
      (NOW - span, span // events, NOW - span, span // events))
    q("INSERT INTO tevent_extended (id_evento, utimestamp, description) SELECT seq, seq, CONCAT('ext ', seq)"
      " FROM seq_1_to_" + str(events) + " WHERE seq MOD 2 = 0")
    q("INSERT INTO tevent_comment (id_event, utimestamp, comment) SELECT seq, seq, CONCAT('c ', seq)"
      " FROM seq_1_to_" + str(events) + " WHERE seq MOD 3 = 0")
    q("INSERT INTO ttrap (source, oid, `timestamp`, utimestamp, value) SELECT CONCAT('10.0.0.', seq MOD 9),"
      " CONCAT('1.3.6.', seq), FROM_UNIXTIME(%s + seq * %s), %s + seq * %s, IF(seq MOD 4 = 0, NULL, 'v')"
      " FROM seq_1_to_" + str(traps), (NOW - span, span // traps, NOW - span, span // traps))


def rows(db, table):
    return collections.Counter(tuple(r) for r in db.query("SELECT * FROM `%s`" % table))


def snapshot(main, history):
    return dict((t, (rows(main, t), rows(history, t))) for t in MOVED)


def assert_conserved(original, main, history, days=30, now=NOW):
    """main ∪ history == original (multisets, all columns), no row on both sides, none younger moved."""
    for table in MOVED:
        on_main, on_hist = rows(main, table), rows(history, table)
        both = on_main & on_hist
        assert not both, "%s: %d rows on both sides, e.g. %r" % (table, sum(both.values()), list(both)[:3])
        assert on_main + on_hist == original[table], "%s: main+history differ from the original (%d+%d vs %d)" % (
            table, sum(on_main.values()), sum(on_hist.values()), sum(original[table].values()))
    cutoff = now - days * DAY
    for table, col in (("tagente_datos", "utimestamp"), ("tagente_datos_string", "utimestamp"),
                       ("tevento", "utimestamp"), ("ttrap", "UNIX_TIMESTAMP(`timestamp`)")):
        young = history.scalar("SELECT COUNT(*) FROM `%s` WHERE %s >= %%s" % (table, col), (cutoff,))
        assert young == 0, "%s: %d rows younger than the cutoff left main" % (table, young)


def original_of(main):
    return dict((t, rows(main, t)) for t in MOVED)


def old_rows_left(main, days=30, now=NOW):
    cutoff = now - days * DAY
    return sum(main.scalar(sql, (cutoff,)) for sql in (
        "SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s",
        "SELECT COUNT(*) FROM tagente_datos_string WHERE utimestamp < %s",
        "SELECT COUNT(*) FROM tevento WHERE utimestamp < %s",
        "SELECT COUNT(*) FROM ttrap WHERE UNIX_TIMESTAMP(`timestamp`) < %s"))


class OneConnection(object):
    """``query``/``scalar`` of a Database over one connection (checks in loops stay cheap)."""

    def __init__(self, db):
        self.db = db
        self.conn = db.connect()

    def query(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def scalar(self, sql, args=None):
        found = self.query(sql, args)
        return found[0][0] if found else None

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
