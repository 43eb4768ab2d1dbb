-- Run leases (agentfirm/worker.py): the one worker that runs a task's build now, and until when.
-- A worker takes the lease before it runs anything and renews it while it runs; another worker
-- given the same task (the work queue delivers at least once, and a Redis that restarted empty
-- gets the run queued again) waits until the lease is released or expires. It lives here, not in
-- Redis, so a Redis that loses its data cannot hand the same build to two workers at once.
-- Times are written by the writer's clock: the SQLite file is shared by one machine only.

CREATE TABLE run_leases (
    task_id TEXT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    holder TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
