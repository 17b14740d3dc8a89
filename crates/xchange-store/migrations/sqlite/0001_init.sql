-- Xchange store, SQLite: the first schema.
-- STRICT tables make SQLite refuse a value of the wrong type instead of storing it.
-- JSON is TEXT written by serde_json; ids compare by bytes (BINARY collation), as in the
-- PostgreSQL schema's COLLATE "C", so both backends list in the same order.

CREATE TABLE jobs (
    job_id      TEXT    NOT NULL PRIMARY KEY,
    taskdb      TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('submitted', 'announced', 'awarded', 'running',
                                                  'completed', 'failed', 'cancelled', 'expired')),
    document    TEXT    NOT NULL,
    body_hash   TEXT    NOT NULL,
    result      TEXT,
    reason_code INTEGER,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    version     INTEGER NOT NULL
) STRICT;

-- list_jobs(taskdb, after, limit) walks this index in job_id order.
CREATE INDEX jobs_taskdb_job_id ON jobs (taskdb, job_id);

-- The outbox. AUTOINCREMENT: ids are never reused, even after the newest row is deleted
-- by a future pruning, so a reader's resume point stays meaningful.
-- No index on job_id yet: nothing reads events by job and jobs are never deleted.
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT    NOT NULL REFERENCES jobs (job_id),
    kind    TEXT    NOT NULL,
    payload TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE taskdbs (
    task_listing_db_id TEXT    NOT NULL PRIMARY KEY,
    document           TEXT    NOT NULL,
    created_ms         INTEGER NOT NULL,
    updated_ms         INTEGER NOT NULL,
    version            INTEGER NOT NULL
) STRICT;

CREATE TABLE templates (
    name       TEXT    NOT NULL PRIMARY KEY,
    schema     TEXT    NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;
