-- Xchange store, PostgreSQL: the first schema.
-- Key columns use COLLATE "C" so that ids order by bytes, as in SQLite, whatever the
-- database's default collation: paging with `after` must give the same pages on both.
-- Unqualified names: the schema comes from the connection's search_path.

CREATE TABLE jobs (
    job_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    taskdb      TEXT COLLATE "C" NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('submitted', 'announced', 'awarded', 'running',
                                               'completed', 'failed', 'cancelled', 'expired')),
    document    JSONB NOT NULL,
    body_hash   TEXT NOT NULL,
    result      JSONB,
    reason_code INTEGER,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    version     BIGINT NOT NULL
);

-- list_jobs(taskdb, after, limit) walks this index in job_id order.
CREATE INDEX jobs_taskdb_job_id ON jobs (taskdb, job_id);

-- The outbox. Writers take a transaction-scoped advisory lock before inserting (see
-- postgres.rs), so ids become visible in increasing order and a reader that resumes
-- after the last id it saw never skips a row committed late.
-- No index on job_id yet: nothing reads events by job and jobs are never deleted.
CREATE TABLE events (
    id      BIGSERIAL PRIMARY KEY,
    job_id  TEXT COLLATE "C" NOT NULL REFERENCES jobs (job_id),
    kind    TEXT NOT NULL,
    payload JSONB NOT NULL,
    at_ms   BIGINT NOT NULL
);

CREATE TABLE taskdbs (
    task_listing_db_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    document           JSONB NOT NULL,
    created_ms         BIGINT NOT NULL,
    updated_ms         BIGINT NOT NULL,
    version            BIGINT NOT NULL
);

CREATE TABLE templates (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    schema     JSONB NOT NULL,
    created_ms BIGINT NOT NULL
);
