-- Change numbers for local caches of this database (agentfirm/store/cache.py): one row per task
-- and kind of data a cache keeps — 'task' (the task row and its transitions), 'ledger',
-- 'approvals', 'events' — whose rev takes a new value from one sequence in the same transaction as
-- any change to that data, whoever makes it. A cache whose copy of a task's data carries the rev
-- the database has now is current; any other rev means: fetch again. The row lock taken by the
-- bump orders the changes of one task's data, so a rev read is never newer than the data read
-- after it. cache_origin names this database, so a cache never serves rows of another one.

CREATE TABLE cache_origin (origin TEXT NOT NULL);
INSERT INTO cache_origin VALUES (gen_random_uuid()::TEXT);

CREATE SEQUENCE cache_rev_seq;

CREATE TABLE cache_revs (
    task_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    rev BIGINT NOT NULL,
    PRIMARY KEY (task_id, kind)
);

-- TG_ARGV[0]: the kind. Transition tables are named "changed" by every trigger below.
CREATE FUNCTION agentfirm_bump_cache_revs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cache_revs AS r (task_id, kind, rev)
    SELECT task_id, TG_ARGV[0], nextval('cache_rev_seq')
    FROM (SELECT DISTINCT task_id FROM changed) AS touched
    ORDER BY task_id
    ON CONFLICT (task_id, kind) DO UPDATE SET rev = excluded.rev;
    RETURN NULL;
END $$;

-- The same for the tasks table, whose key is "id".
CREATE FUNCTION agentfirm_bump_task_cache_revs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cache_revs AS r (task_id, kind, rev)
    SELECT id, 'task', nextval('cache_rev_seq')
    FROM (SELECT DISTINCT id FROM changed) AS touched
    ORDER BY id
    ON CONFLICT (task_id, kind) DO UPDATE SET rev = excluded.rev;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_insert_bumps_cache AFTER INSERT ON tasks REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_task_cache_revs();
CREATE TRIGGER tasks_update_bumps_cache AFTER UPDATE ON tasks REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_task_cache_revs();
CREATE TRIGGER tasks_delete_bumps_cache AFTER DELETE ON tasks REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_task_cache_revs();

CREATE TRIGGER transitions_insert_bumps_cache AFTER INSERT ON transitions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('task');
CREATE TRIGGER transitions_update_bumps_cache AFTER UPDATE ON transitions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('task');
CREATE TRIGGER transitions_delete_bumps_cache AFTER DELETE ON transitions
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('task');

CREATE TRIGGER ledger_insert_bumps_cache AFTER INSERT ON ledger
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('ledger');
CREATE TRIGGER ledger_update_bumps_cache AFTER UPDATE ON ledger
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('ledger');
CREATE TRIGGER ledger_delete_bumps_cache AFTER DELETE ON ledger
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('ledger');

CREATE TRIGGER approvals_insert_bumps_cache AFTER INSERT ON approvals
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('approvals');
CREATE TRIGGER approvals_update_bumps_cache AFTER UPDATE ON approvals
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('approvals');
CREATE TRIGGER approvals_delete_bumps_cache AFTER DELETE ON approvals
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('approvals');

CREATE TRIGGER events_insert_bumps_cache AFTER INSERT ON events
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('events');
CREATE TRIGGER events_update_bumps_cache AFTER UPDATE ON events
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('events');
CREATE TRIGGER events_delete_bumps_cache AFTER DELETE ON events
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_bump_cache_revs('events');

INSERT INTO cache_revs (task_id, kind, rev)
SELECT task_id, kind, nextval('cache_rev_seq') FROM (
    SELECT id AS task_id, 'task' AS kind FROM tasks
    UNION SELECT task_id, 'task' FROM transitions
    UNION SELECT task_id, 'ledger' FROM ledger
    UNION SELECT task_id, 'approvals' FROM approvals
    UNION SELECT task_id, 'events' FROM events
) AS present;
