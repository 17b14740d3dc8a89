-- Xchange store, SQLite: organisations, subscriptions, agent cards, and the indexes behind
-- list_unfinished_jobs and the job statistics.

-- list_unfinished_jobs walks this in job_id order, skipping finished jobs without reading
-- them. The condition must be spelled as in the query (sql/jobs.rs, UNFINISHED).
CREATE INDEX jobs_unfinished ON jobs (job_id)
    WHERE state IN ('submitted', 'announced', 'awarded', 'running');

-- job_counts_by_taskdb counts from this index alone.
CREATE INDEX jobs_taskdb_state ON jobs (taskdb, state);

-- completed_latency's percentiles walk this index in latency order.
CREATE INDEX jobs_completed_latency ON jobs (taskdb, updated_ms - created_ms)
    WHERE state = 'completed';

CREATE TABLE orgs (
    org_id     TEXT    NOT NULL PRIMARY KEY,
    document   TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    version    INTEGER NOT NULL
) STRICT;

-- No foreign keys: a subscription names a task database and a subject (agent or
-- organisation) by id, and either may be registered later or elsewhere.
CREATE TABLE subscriptions (
    taskdb     TEXT    NOT NULL,
    subject_id TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (taskdb, subject_id)
) STRICT;

-- subscriptions_of(subject_id) walks this.
CREATE INDEX subscriptions_subject ON subscriptions (subject_id, taskdb);

CREATE TABLE agent_cards (
    agent_id   TEXT    NOT NULL PRIMARY KEY,
    card       TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
