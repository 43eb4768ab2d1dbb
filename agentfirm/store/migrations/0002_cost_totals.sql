-- Running cost totals per task x module x tier x provider, so a cost summary reads a few dozen
-- rows instead of aggregating the whole ledger (the Postgres schema has the same table).
-- Triggers keep them in the same transaction as the ledger rows they count, whatever writes the
-- ledger. A NULL module (a task-level call) is its own group, distinct from any module id.
-- first_at and first_seq keep the groups in order of first appearance on the ledger.

CREATE TABLE cost_totals (
    task_id TEXT NOT NULL,
    module_id TEXT,
    tier TEXT NOT NULL,
    provider TEXT NOT NULL,
    cost_nano BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    simulated INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    first_seq INTEGER NOT NULL
);

CREATE UNIQUE INDEX cost_totals_group
    ON cost_totals (task_id, module_id IS NULL, IFNULL(module_id, ''), tier, provider);

-- A firm-wide summary (every task's groups merged) walks this index in group order, with no sort
-- and without touching the table.
CREATE INDEX cost_totals_by_group ON cost_totals
    (module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq);

CREATE TRIGGER ledger_adds_cost_totals AFTER INSERT ON ledger BEGIN
    INSERT INTO cost_totals
        (task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
    VALUES (NEW.task_id, NEW.module_id, NEW.tier, NEW.provider, NEW.cost_nano, 1, NEW.simulated,
            NEW.at, NEW.seq)
    ON CONFLICT (task_id, module_id IS NULL, IFNULL(module_id, ''), tier, provider) DO UPDATE SET
        cost_nano = cost_nano + excluded.cost_nano,
        calls = calls + 1,
        simulated = MAX(simulated, excluded.simulated),
        first_at = MIN(first_at, excluded.first_at),
        first_seq = MIN(first_seq, excluded.first_seq);
END;

-- The store never changes or deletes a ledger row; if someone does, the groups touched are
-- counted again from the ledger itself.
CREATE TRIGGER ledger_delete_recounts_cost_totals AFTER DELETE ON ledger BEGIN
    DELETE FROM cost_totals
    WHERE task_id = OLD.task_id AND module_id IS OLD.module_id
      AND tier = OLD.tier AND provider = OLD.provider;
    INSERT INTO cost_totals
        (task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
    SELECT task_id, module_id, tier, provider, SUM(cost_nano), COUNT(*), MAX(simulated),
           MIN(at), MIN(seq)
    FROM ledger
    WHERE task_id = OLD.task_id AND module_id IS OLD.module_id
      AND tier = OLD.tier AND provider = OLD.provider
    GROUP BY task_id, module_id, tier, provider;
END;

CREATE TRIGGER ledger_update_recounts_cost_totals AFTER UPDATE ON ledger BEGIN
    DELETE FROM cost_totals
    WHERE (task_id = OLD.task_id AND module_id IS OLD.module_id
           AND tier = OLD.tier AND provider = OLD.provider)
       OR (task_id = NEW.task_id AND module_id IS NEW.module_id
           AND tier = NEW.tier AND provider = NEW.provider);
    INSERT INTO cost_totals
        (task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
    SELECT task_id, module_id, tier, provider, SUM(cost_nano), COUNT(*), MAX(simulated),
           MIN(at), MIN(seq)
    FROM ledger
    WHERE (task_id = OLD.task_id AND module_id IS OLD.module_id
           AND tier = OLD.tier AND provider = OLD.provider)
       OR (task_id = NEW.task_id AND module_id IS NEW.module_id
           AND tier = NEW.tier AND provider = NEW.provider)
    GROUP BY task_id, module_id, tier, provider;
END;

INSERT INTO cost_totals
    (task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
SELECT task_id, module_id, tier, provider, SUM(cost_nano), COUNT(*), MAX(simulated),
       MIN(at), MIN(seq)
FROM ledger
GROUP BY task_id, module_id, tier, provider;
