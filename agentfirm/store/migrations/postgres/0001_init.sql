-- The system of record on Postgres: the same tables and columns as the SQLite schema
-- (migrations/0001_init.sql), in Postgres types. Money is integer nano-dollars (BIGINT); times are
-- TIMESTAMPTZ; nested data is JSONB. Ids sort with the "C" collation so ORDER BY matches SQLite's
-- byte order whatever the database's locale.

CREATE TABLE tasks (
    id TEXT COLLATE "C" PRIMARY KEY,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    persona TEXT,
    budget_nano BIGINT NOT NULL DEFAULT 0,
    spec JSONB,
    repo_path TEXT,
    deliverable_path TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX tasks_by_created_at ON tasks (created_at);

-- seq numbers a task's transitions from 1; writers hold the task row lock while numbering.
CREATE TABLE transitions (
    task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE module_runs (
    task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    module_id TEXT COLLATE "C" NOT NULL,
    wave INTEGER NOT NULL DEFAULT 0,
    tier TEXT NOT NULL,
    depends_on JSONB NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    provider TEXT,
    model TEXT,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    cost_nano BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, module_id)
);

CREATE TABLE artifacts (
    task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    module_id TEXT COLLATE "C" NOT NULL,
    version INTEGER NOT NULL,
    output_type TEXT NOT NULL,
    content JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, module_id, version)
);

CREATE TABLE budgets (
    task_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    ceiling_nano BIGINT NOT NULL CHECK (ceiling_nano >= 0),
    spent_nano BIGINT NOT NULL DEFAULT 0 CHECK (spent_nano >= 0),
    reserved_nano BIGINT NOT NULL DEFAULT 0 CHECK (reserved_nano >= 0),
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE reservations (
    call_id TEXT COLLATE "C" PRIMARY KEY,
    task_id TEXT COLLATE "C" NOT NULL REFERENCES budgets (task_id) ON DELETE CASCADE,
    amount_nano BIGINT NOT NULL CHECK (amount_nano >= 0),
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX reservations_by_task ON reservations (task_id);

-- No foreign key to tasks: a paid call is recorded even if its task row is missing, because a
-- lost ledger row is worse than an orphan one. call_id is not unique (a call may be retried).
-- seq numbers a task's ledger rows from 1; writers hold a per-task advisory lock while numbering.
CREATE TABLE ledger (
    task_id TEXT COLLATE "C" NOT NULL,
    seq INTEGER NOT NULL,
    call_id TEXT COLLATE "C" NOT NULL,
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
    simulated BOOLEAN NOT NULL DEFAULT FALSE,
    error TEXT,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE INDEX ledger_by_call ON ledger (call_id);

CREATE TABLE approvals (
    id TEXT COLLATE "C" PRIMARY KEY,
    task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    decision TEXT NOT NULL DEFAULT 'pending',
    actor TEXT,
    notes TEXT NOT NULL DEFAULT '',
    payload JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    decided_at TIMESTAMPTZ
);

CREATE INDEX approvals_by_task ON approvals (task_id, created_at);

CREATE TABLE events (
    task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    module_id TEXT,
    ts TIMESTAMPTZ NOT NULL,
    payload JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (task_id, stream, seq)
);
