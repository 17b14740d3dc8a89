-- Xchange store, SQLite: partitions leased by nodes (see src/lease.rs). One node uses
-- them too, so that the embedded default runs the same code as a cluster.

-- Every job belongs to one partition, chosen by the node that accepts it among the
-- partitions it holds; jobs stored before this migration are in partition 0.
ALTER TABLE jobs ADD COLUMN partition_no INTEGER NOT NULL DEFAULT 0;

-- A node taking a partition over walks this to find the jobs it must carry on. The
-- condition must be spelled as in the query (sql/jobs.rs, UNFINISHED).
CREATE INDEX jobs_unfinished_partition ON jobs (partition_no, job_id)
    WHERE state IN ('submitted', 'announced', 'awarded', 'running');

-- One row per partition. `epoch` grows by one at every acquisition: a job write carries
-- the epoch its node holds and is refused when the row has moved on (fencing).
-- `expires_ms` is on the database's clock.
CREATE TABLE partition_leases (
    partition_no INTEGER NOT NULL PRIMARY KEY CHECK (partition_no >= 0),
    owner        TEXT,
    epoch        INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    acquired_ms  INTEGER NOT NULL
) STRICT;

-- The nodes that took part, with when each last said it was alive (database clock).
CREATE TABLE cluster_nodes (
    node_id    TEXT    NOT NULL PRIMARY KEY,
    url        TEXT    NOT NULL,
    started_ms INTEGER NOT NULL,
    seen_ms    INTEGER NOT NULL
) STRICT;
