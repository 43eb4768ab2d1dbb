-- Firm-wide running cost totals per module x tier x provider (every task's groups merged), so
-- the firm-wide summary reads a few dozen rows instead of merging the thousands of cost_totals
-- rows (the Postgres schema has the same table). The triggers sit on cost_totals, whose own
-- triggers (0002) fire in the ledger's statement, so this table moves in that same transaction
-- after cost_totals has: whatever writes the ledger, the three can never disagree.
-- first_at and first_seq are the smallest of the groups merged (the order the merged summary
-- always had: MIN(first_at), MIN(first_seq)).

CREATE TABLE cost_rollup (
    module_id TEXT,
    tier TEXT NOT NULL,
    provider TEXT NOT NULL,
    cost_nano BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    simulated INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    first_seq INTEGER NOT NULL
);

CREATE UNIQUE INDEX cost_rollup_group
    ON cost_rollup (module_id IS NULL, IFNULL(module_id, ''), tier, provider);

CREATE TRIGGER cost_totals_add_rollup AFTER INSERT ON cost_totals BEGIN
    INSERT INTO cost_rollup
        (module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
    VALUES (NEW.module_id, NEW.tier, NEW.provider, NEW.cost_nano, NEW.calls, NEW.simulated,
            NEW.first_at, NEW.first_seq)
    ON CONFLICT (module_id IS NULL, IFNULL(module_id, ''), tier, provider) DO UPDATE SET
        cost_nano = cost_nano + excluded.cost_nano,
        calls = calls + excluded.calls,
        simulated = MAX(simulated, excluded.simulated),
        first_at = MIN(first_at, excluded.first_at),
        first_seq = MIN(first_seq, excluded.first_seq);
END;

-- 0002 updates a total only to fold a new ledger row in (a group's key never changes: a changed
-- or deleted ledger row deletes its totals and inserts them again), so an update only grows a
-- group: add the difference, keep the smallest first_* and any simulated call.
CREATE TRIGGER cost_totals_update_rollup AFTER UPDATE ON cost_totals BEGIN
    UPDATE cost_rollup SET
        cost_nano = cost_nano + NEW.cost_nano - OLD.cost_nano,
        calls = calls + NEW.calls - OLD.calls,
        simulated = MAX(simulated, NEW.simulated),
        first_at = MIN(first_at, NEW.first_at),
        first_seq = MIN(first_seq, NEW.first_seq)
    WHERE module_id IS NEW.module_id AND tier = NEW.tier AND provider = NEW.provider;
END;

-- A deleted total takes its sums out; the smallest first_* and simulated cannot be taken out, so
-- they are found again among the group's remaining totals (cost_totals_by_group of 0002 covers
-- that lookup). A group left with no calls goes.
CREATE TRIGGER cost_totals_delete_rollup AFTER DELETE ON cost_totals BEGIN
    UPDATE cost_rollup SET
        cost_nano = cost_nano - OLD.cost_nano,
        calls = calls - OLD.calls,
        simulated = IFNULL((SELECT MAX(simulated) FROM cost_totals
            WHERE module_id IS OLD.module_id AND tier = OLD.tier AND provider = OLD.provider), 0),
        first_at = IFNULL((SELECT MIN(first_at) FROM cost_totals
            WHERE module_id IS OLD.module_id AND tier = OLD.tier AND provider = OLD.provider),
            first_at),
        first_seq = IFNULL((SELECT MIN(first_seq) FROM cost_totals
            WHERE module_id IS OLD.module_id AND tier = OLD.tier AND provider = OLD.provider),
            first_seq)
    WHERE module_id IS OLD.module_id AND tier = OLD.tier AND provider = OLD.provider;
    DELETE FROM cost_rollup
    WHERE module_id IS OLD.module_id AND tier = OLD.tier AND provider = OLD.provider
      AND calls = 0;
END;

INSERT INTO cost_rollup
    (module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
SELECT module_id, tier, provider, SUM(cost_nano), SUM(calls), MAX(simulated),
       MIN(first_at), MIN(first_seq)
FROM cost_totals
GROUP BY module_id, tier, provider;
