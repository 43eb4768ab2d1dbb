-- Settling a call becomes one statement that waits for no other writer of its task's ledger
-- beyond that statement (issue 19): a task's ledger rows take their seq (from 1, without gaps)
-- from a counter row bumped in the settling statement itself, whose row lock lasts only to that
-- statement's commit, instead of MAX(seq) + 1 under a per-task advisory lock held across the
-- round trips of a transaction.
CREATE TABLE ledger_counters (
    task_id TEXT COLLATE "C" PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
INSERT INTO ledger_counters (task_id, last_seq) SELECT task_id, MAX(seq) FROM ledger GROUP BY task_id;

-- Without that lock two writers of one task's ledger may reach its cache_revs row at once. The
-- rev of an update is now taken after the row lock (in the SET, not before the conflict was
-- found), so a row's revs rise in commit order, as caches assume (agentfirm/store/cache.py).
CREATE OR REPLACE FUNCTION agentfirm_bump_cache_revs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cache_revs AS r (task_id, kind, rev)
    SELECT task_id, TG_ARGV[0], nextval('cache_rev_seq')
    FROM (SELECT DISTINCT task_id FROM changed) AS touched
    ORDER BY task_id
    ON CONFLICT (task_id, kind) DO UPDATE SET rev = nextval('cache_rev_seq');
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION agentfirm_bump_task_cache_revs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cache_revs AS r (task_id, kind, rev)
    SELECT id, 'task', nextval('cache_rev_seq')
    FROM (SELECT DISTINCT id FROM changed) AS touched
    ORDER BY id
    ON CONFLICT (task_id, kind) DO UPDATE SET rev = nextval('cache_rev_seq');
    RETURN NULL;
END $$;
