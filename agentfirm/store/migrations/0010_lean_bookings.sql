-- Fewer b-trees written by each budget booking: every page a statement changes is written to the
-- WAL again at its commit, and a settle changed eleven (a reserve four), which is most of what a
-- booking costs (issue 19: the router's share of a structured call). Two go:
--
-- 1. cost_totals_by_group (0002) held cost_nano and calls, so every settle moved its entry. Since
--    0004 the firm-wide summary reads cost_rollup instead; the index now serves only the lookup
--    of a group's remaining totals when one is deleted (0004's cost_totals_delete_rollup, a rare
--    path: the store never deletes a ledger row), for which the group's key is enough. Those
--    columns never change on a settle, so the index is not written by one.
DROP INDEX cost_totals_by_group;
CREATE INDEX cost_totals_by_group ON cost_totals (module_id, tier, provider);

-- 2. reservations is keyed by call_id: a WITHOUT ROWID table is that key's own b-tree, where a
--    rowid table needed a second one for the key. The table is rebuilt (in-flight calls only: a
--    few rows); the triggers that name it are dropped first and made again as 0003 made them, so
--    the rename below finds none that names a table missing at that moment.
DROP TRIGGER ledger_row_settles_budget;
DROP TRIGGER ledger_row_matches_reservation;
DROP TRIGGER reservation_holds_budget;
DROP TRIGGER reservation_frees_budget;

CREATE TABLE reservations_keyed (
    call_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES budgets (task_id) ON DELETE CASCADE,
    amount_nano BIGINT NOT NULL CHECK (amount_nano >= 0),
    created_at TEXT NOT NULL,
    module_id TEXT,
    tier TEXT,
    provider TEXT,
    model TEXT,
    simulated INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

INSERT INTO reservations_keyed
    (call_id, task_id, amount_nano, created_at, module_id, tier, provider, model, simulated)
SELECT call_id, task_id, amount_nano, created_at, module_id, tier, provider, model, simulated
FROM reservations;

DROP TABLE reservations;
ALTER TABLE reservations_keyed RENAME TO reservations;
CREATE INDEX reservations_by_task ON reservations (task_id);

CREATE TRIGGER reservation_holds_budget AFTER INSERT ON reservations BEGIN
    UPDATE budgets SET reserved_nano = reserved_nano + NEW.amount_nano,
        updated_at = NEW.created_at
    WHERE task_id = NEW.task_id;
END;

CREATE TRIGGER reservation_frees_budget AFTER DELETE ON reservations BEGIN
    UPDATE budgets SET reserved_nano = reserved_nano - OLD.amount_nano,
        updated_at = strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')
    WHERE task_id = OLD.task_id;
END;

CREATE TRIGGER ledger_row_settles_budget AFTER INSERT ON ledger BEGIN
    DELETE FROM reservations WHERE call_id = NEW.call_id;
    UPDATE budgets SET spent_nano = spent_nano + NEW.cost_nano, updated_at = NEW.at
    WHERE task_id = NEW.task_id AND NEW.cost_nano <> 0;
END;

CREATE TRIGGER ledger_row_matches_reservation BEFORE INSERT ON ledger
WHEN EXISTS (
    SELECT 1 FROM reservations WHERE call_id = NEW.call_id AND task_id <> NEW.task_id
)
BEGIN
    SELECT RAISE(ABORT, 'agentfirm: call reserved budget of another task');
END;

-- The budgets' reserved totals already match these rows (they were copied as they were); the
-- copy fired no trigger, as none was on the new table yet.
