-- The system of record. Money is integer nano-dollars (BIGINT: 64-bit in SQLite and Postgres);
-- times are ISO 8601 UTC text; nested data is JSON text. One statement per ';'-terminated line end.

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    persona TEXT,
    budget_nano BIGINT NOT NULL DEFAULT 0,
    spec TEXT,
    repo_path TEXT,
    deliverable_path TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX tasks_by_created_at ON tasks (created_at);

-- seq numbers a task's transitions from 1 (portable ordering without auto-increment syntax).
CREATE TABLE transitions (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE module_runs (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    module_id TEXT NOT NULL,
    wave INTEGER NOT NULL DEFAULT 0,
    tier TEXT NOT NULL,
    depends_on TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    provider TEXT,
    model TEXT,
    started_at TEXT,
    finished_at TEXT,
    cost_nano BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, module_id)
);

CREATE TABLE artifacts (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    module_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    output_type TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (task_id, module_id, version)
);

CREATE TABLE budgets (
    task_id TEXT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    ceiling_nano BIGINT NOT NULL CHECK (ceiling_nano >= 0),
    spent_nano BIGINT NOT NULL DEFAULT 0 CHECK (spent_nano >= 0),
    reserved_nano BIGINT NOT NULL DEFAULT 0 CHECK (reserved_nano >= 0),
    updated_at TEXT NOT NULL
);

CREATE TABLE reservations (
    call_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES budgets (task_id) ON DELETE CASCADE,
    amount_nano BIGINT NOT NULL CHECK (amount_nano >= 0),
    created_at TEXT NOT NULL
);

CREATE INDEX reservations_by_task ON reservations (task_id);

-- No foreign key to tasks: a paid call is recorded even if its task row is missing, because a
-- lost ledger row is worse than an orphan one. call_id is not unique (a call may be retried).
CREATE TABLE ledger (
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    module_id TEXT,
    tier TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cached_input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cost_nano BIGINT NOT NULL DEFAULT 0,
    latency_ms BIGINT NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,
    simulated INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE INDEX ledger_by_call ON ledger (call_id);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    decision TEXT NOT NULL DEFAULT 'pending',
    actor TEXT,
    notes TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    decided_at TEXT
);

CREATE INDEX approvals_by_task ON approvals (task_id, created_at);

CREATE TABLE events (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    module_id TEXT,
    ts TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (task_id, stream, seq)
);
