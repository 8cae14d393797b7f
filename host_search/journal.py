"""The search journal: one SQLite file in the run folder, every evaluation as it happens.

``RUN/journal.sqlite`` (WAL mode, one writer: the search's main process) holds the search's
configuration (``meta``), every bundle with its estimate and fate (``bundles``), every
screened candidate's estimate (``estimates``), every training evaluation with its design
JSON, seed, result and image-epochs charged (``evals``), every measurement on a board
(``measurements``), calibrations (``calibrations``, written by the closed loop), the
search's steps (``steps``) and a plain log (``events``).

Resuming is replaying: the search is a deterministic function of its configuration and of
its evaluations' results (all randomness is drawn from ``(seed, step)``), so a resumed run
re-walks the same steps and takes every finished evaluation from ``evals`` instead of
running it again. Rows keyed by what they describe (``INSERT OR IGNORE``) are not written
twice by a replay. ``evals.executions`` counts how often an evaluation was started: a
finished one is never started again.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

from pynq_codesign.errors import CodesignError

JOURNAL = "journal.sqlite"
SCHEMA = 1
APP = "pynq-codesign search"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
  key TEXT PRIMARY KEY, template TEXT NOT NULL, dropped TEXT NOT NULL, stage TEXT NOT NULL,
  estimate TEXT, prototype TEXT, grp TEXT, iou REAL, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS estimates (
  strategy TEXT NOT NULL, step INTEGER NOT NULL, design_key TEXT NOT NULL, knobs TEXT,
  fps REAL, power_w REAL, dsp INTEGER, bram18 INTEGER, lut INTEGER, meets INTEGER,
  max_fps REAL, macs INTEGER, source TEXT NOT NULL, role TEXT, t REAL NOT NULL,
  PRIMARY KEY (strategy, step, design_key));
CREATE TABLE IF NOT EXISTS evals (
  key TEXT PRIMARY KEY, kind TEXT NOT NULL, strategy TEXT NOT NULL, step INTEGER,
  seed INTEGER NOT NULL, design TEXT NOT NULL, knobs TEXT, status TEXT NOT NULL,
  result TEXT, image_epochs INTEGER NOT NULL DEFAULT 0, executions INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0, error TEXT, started REAL, finished REAL);
CREATE TABLE IF NOT EXISTS measurements (
  id INTEGER PRIMARY KEY AUTOINCREMENT, design_key TEXT NOT NULL, eval_key TEXT,
  source TEXT NOT NULL, record TEXT NOT NULL, t REAL NOT NULL,
  UNIQUE (design_key, source));
CREATE TABLE IF NOT EXISTS calibrations (
  id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
  strategy TEXT NOT NULL, step INTEGER NOT NULL, data TEXT NOT NULL, t REAL NOT NULL,
  PRIMARY KEY (strategy, step));
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL NOT NULL, kind TEXT NOT NULL, message TEXT);
"""


class JournalError(CodesignError):
    """A journal that cannot be used: missing, another search's, or damaged."""


def _dumps(x: Any) -> str | None:
    return None if x is None else json.dumps(x, sort_keys=True)


def _loads(s: str | None) -> Any:
    return None if s is None else json.loads(s)


class Journal:
    """The journal of one search run folder. Use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn

    # --- opening -------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @classmethod
    def create(cls, run: Path, config: dict) -> "Journal":
        """A new journal for ``config`` in ``run``, or the same search's existing one."""
        path = Path(run) / JOURNAL
        if path.exists():
            j = cls.open(run)
            if j.config() != config:
                j.close()
                raise JournalError(
                    f"{run} holds another search ({path.name} was written with other "
                    "options); continue it with `codesign search --resume "
                    f"{run}` or choose a new --out")
            return j
        Path(run).mkdir(parents=True, exist_ok=True)
        conn = cls._connect(path)
        conn.executescript(_TABLES)
        conn.execute("BEGIN")
        for k, v in (("app", APP), ("schema", SCHEMA), ("config", config),
                     ("created", time.time())):
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))
        conn.execute("COMMIT")
        return cls(path, conn)

    @classmethod
    def open(cls, run: Path) -> "Journal":
        """The journal of an existing run folder (checked, never modified by opening)."""
        path = Path(run) / JOURNAL
        if not path.is_file():
            raise JournalError(f"{run}: no search journal ({JOURNAL}) here; start a search "
                               "with `codesign search ... --out RUN`")
        try:
            conn = cls._connect(path)
            names = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) \
                if "meta" in names else {}
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise JournalError(f"{path}: not a readable search journal ({e}); it was left "
                               "as it is; start a new search with another --out")
        if ok != "ok":
            conn.close()
            raise JournalError(f"{path}: the journal is damaged ({ok}); it was left as it is; "
                               "start a new search with another --out")
        if json.loads(meta.get("app", "null")) != APP or "config" not in meta:
            conn.close()
            raise JournalError(f"{path}: an SQLite file, but not a pynq-codesign search "
                               "journal; it was left as it is")
        if json.loads(meta["schema"]) != SCHEMA:
            conn.close()
            raise JournalError(f"{path}: journal schema {meta['schema']}, this version reads "
                               f"{SCHEMA}")
        conn.executescript(_TABLES)
        return cls(path, conn)

    def close(self) -> None:
        self.conn.close()

    # --- meta ----------------------------------------------------------------------------
    def config(self) -> dict:
        return json.loads(self.get_meta("config"))

    def get_meta(self, key: str) -> str | None:
        r = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return r[0] if r else None

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # --- writing -------------------------------------------------------------------------
    def log(self, kind: str, message: str) -> None:
        self.conn.execute("INSERT INTO events (t, kind, message) VALUES (?, ?, ?)",
                          (time.time(), kind, message))

    def add_bundle(self, key: str, template: dict, dropped: str, stage: str,
                   estimate: dict | None, prototype: dict | None, grp: str | None = None,
                   iou: float | None = None) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO bundles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, _dumps(template), dropped, stage, _dumps(estimate), _dumps(prototype), grp,
             iou, time.time()))

    def add_estimates(self, strategy: str, step: int, rows: list[dict]) -> None:
        """Screened candidates of one step (``design_key``, ``knobs``, ``fps``, ...)."""
        now = time.time()
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT OR IGNORE INTO estimates VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(strategy, step, r["design_key"], _dumps(r.get("knobs")), r.get("fps"),
              r.get("power_w"), r.get("dsp"), r.get("bram18"), r.get("lut"),
              int(bool(r.get("meets"))), r.get("max_fps"), r.get("macs"),
              r.get("source", "estimated"), r.get("role"), now) for r in rows])
        self.conn.execute("COMMIT")

    def eval_started(self, key: str, kind: str, strategy: str, step: int | None, seed: int,
                     design: dict, knobs: dict | None) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO evals (key, kind, strategy, step, seed, design, knobs, "
            "status) VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
            (key, kind, strategy, step, seed, _dumps(design), _dumps(knobs)))
        self.conn.execute("UPDATE evals SET executions = executions + 1, started = ? "
                          "WHERE key = ?", (time.time(), key))

    def eval_finished(self, key: str, status: str, result: dict | None, image_epochs: int,
                      attempts: int, error: str | None = None) -> None:
        self.conn.execute(
            "UPDATE evals SET status=?, result=?, image_epochs=?, attempts=?, error=?, "
            "finished=? WHERE key=?",
            (status, _dumps(result), int(image_epochs), attempts, error, time.time(), key))

    def add_measurement(self, design_key: str, record: dict, source: str,
                        eval_key: str | None = None) -> None:
        """A QoS record measured (or simulated) for a design; one per design and source."""
        self.conn.execute(
            "INSERT OR IGNORE INTO measurements (design_key, eval_key, source, record, t) "
            "VALUES (?, ?, ?, ?, ?)", (design_key, eval_key, source, _dumps(record), time.time()))

    def add_calibration(self, data: dict) -> None:
        """Estimate corrections fitted from measurements (error before/after), as a dict."""
        self.conn.execute("INSERT INTO calibrations (data, t) VALUES (?, ?)",
                          (_dumps(data), time.time()))

    def add_step(self, strategy: str, step: int, data: dict) -> None:
        self.conn.execute("INSERT OR IGNORE INTO steps VALUES (?, ?, ?, ?)",
                          (strategy, step, _dumps(data), time.time()))

    # --- reading -------------------------------------------------------------------------
    def finished_eval(self, key: str) -> dict | None:
        """The finished (done or failed) evaluation ``key`` as a dict, or None."""
        r = self.conn.execute(
            "SELECT status, result, image_epochs, attempts, error FROM evals WHERE key=? AND "
            "status IN ('done', 'failed')", (key,)).fetchone()
        if r is None:
            return None
        return {"status": r[0], "result": _loads(r[1]), "image_epochs": r[2],
                "attempts": r[3], "error": r[4]}

    def measurement(self, design_key: str, source: str) -> dict | None:
        r = self.conn.execute("SELECT record FROM measurements WHERE design_key=? AND source=?",
                              (design_key, source)).fetchone()
        return _loads(r[0]) if r else None

    def rows(self, table: str) -> Iterator[dict]:
        cur = self.conn.execute(f'SELECT * FROM "{table}"')
        cols = [c[0] for c in cur.description]
        for r in cur:
            yield dict(zip(cols, r))

    def evals(self) -> list[dict]:
        out = []
        for r in self.rows("evals"):
            for k in ("design", "knobs", "result"):
                r[k] = _loads(r[k])
            out.append(r)
        return out

    def bundles(self) -> list[dict]:
        out = []
        for r in self.rows("bundles"):
            for k in ("template", "estimate", "prototype"):
                r[k] = _loads(r[k])
            out.append(r)
        return out

    def steps(self) -> list[dict]:
        return [{**_loads(r["data"]), "strategy": r["strategy"], "step": r["step"]}
                for r in self.rows("steps")]

    def estimates(self) -> list[dict]:
        out = []
        for r in self.rows("estimates"):
            r["knobs"] = _loads(r["knobs"])
            out.append(r)
        return out

    def measurements(self) -> list[dict]:
        out = []
        for r in self.rows("measurements"):
            r["record"] = _loads(r["record"])
            out.append(r)
        return out
