-- Firm-wide running cost totals per module x tier x provider (every task's groups merged), so
-- the firm-wide summary reads a few dozen rows instead of merging the thousands of cost_totals
-- rows. The triggers sit on cost_totals, whose own triggers (0002) fire in the ledger's
-- statement, so this table moves in that same transaction after cost_totals has: whatever writes
-- the ledger (settle, a bulk COPY, a hand-run fix), the three can never disagree.
-- first_at and first_seq are the smallest of the groups merged (the order the merged summary
-- always had: MIN(first_at), MIN(first_seq)).

CREATE TABLE cost_rollup (
    module_id TEXT,
    tier TEXT NOT NULL,
    provider TEXT NOT NULL,
    cost_nano BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    simulated BOOLEAN NOT NULL,
    first_at TIMESTAMPTZ NOT NULL,
    first_seq INTEGER NOT NULL,
    CONSTRAINT cost_rollup_group UNIQUE NULLS NOT DISTINCT (module_id, tier, provider)
);

-- One statement per cost_totals statement (0002 writes a COPY's totals in one), in key order so
-- concurrent writers lock the rollup rows in the same order.
CREATE FUNCTION agentfirm_add_cost_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cost_rollup AS r
        (module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
    SELECT module_id, tier, provider, SUM(cost_nano), SUM(calls), BOOL_OR(simulated),
           MIN(first_at), MIN(first_seq)
    FROM added
    GROUP BY module_id, tier, provider
    ORDER BY module_id, tier, provider
    ON CONFLICT ON CONSTRAINT cost_rollup_group DO UPDATE SET
        cost_nano = r.cost_nano + excluded.cost_nano,
        calls = r.calls + excluded.calls,
        simulated = r.simulated OR excluded.simulated,
        first_at = LEAST(r.first_at, excluded.first_at),
        first_seq = LEAST(r.first_seq, excluded.first_seq);
    RETURN NULL;
END $$;

CREATE TRIGGER cost_totals_add_rollup AFTER INSERT ON cost_totals
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_add_cost_rollup();

-- 0002 updates a total only to fold new ledger rows in (a group's key never changes: a changed
-- or deleted ledger row deletes its totals and inserts them again), so an update only grows a
-- group: add the difference, keep the smallest first_* and any simulated call.
CREATE FUNCTION agentfirm_grow_cost_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH grown AS (
        SELECT n.module_id, n.tier, n.provider,
               SUM(n.cost_nano - o.cost_nano) AS cost_nano, SUM(n.calls - o.calls) AS calls,
               BOOL_OR(n.simulated) AS simulated, MIN(n.first_at) AS first_at,
               MIN(n.first_seq) AS first_seq
        FROM after_rows AS n
        JOIN before_rows AS o
          ON o.task_id = n.task_id AND o.module_id IS NOT DISTINCT FROM n.module_id
         AND o.tier = n.tier AND o.provider = n.provider
        GROUP BY n.module_id, n.tier, n.provider
    ), locked AS (
        SELECT r.module_id, r.tier, r.provider
        FROM cost_rollup AS r
        JOIN grown AS g
          ON r.module_id IS NOT DISTINCT FROM g.module_id
         AND r.tier = g.tier AND r.provider = g.provider
        ORDER BY r.module_id, r.tier, r.provider
        FOR UPDATE OF r
    )
    UPDATE cost_rollup AS r SET
        cost_nano = r.cost_nano + g.cost_nano,
        calls = r.calls + g.calls,
        simulated = r.simulated OR g.simulated,
        first_at = LEAST(r.first_at, g.first_at),
        first_seq = LEAST(r.first_seq, g.first_seq)
    FROM grown AS g, locked AS l
    WHERE r.module_id IS NOT DISTINCT FROM g.module_id
      AND r.tier = g.tier AND r.provider = g.provider
      AND l.module_id IS NOT DISTINCT FROM g.module_id
      AND l.tier = g.tier AND l.provider = g.provider;
    RETURN NULL;
END $$;

CREATE TRIGGER cost_totals_grow_rollup AFTER UPDATE ON cost_totals
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_grow_cost_rollup();

-- Deleted totals take their sums out; the smallest first_* and simulated cannot be taken out, so
-- they are found again among each touched group's remaining totals. A group left with no calls
-- goes. (Only a changed or deleted ledger row, or a TRUNCATE, deletes totals: rare.)
CREATE FUNCTION agentfirm_shrink_cost_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH gone AS (
        SELECT module_id, tier, provider, SUM(cost_nano) AS cost_nano, SUM(calls) AS calls
        FROM removed
        GROUP BY module_id, tier, provider
    ), locked AS (
        SELECT r.module_id, r.tier, r.provider
        FROM cost_rollup AS r
        JOIN gone AS g
          ON r.module_id IS NOT DISTINCT FROM g.module_id
         AND r.tier = g.tier AND r.provider = g.provider
        ORDER BY r.module_id, r.tier, r.provider
        FOR UPDATE OF r
    )
    UPDATE cost_rollup AS r SET
        cost_nano = r.cost_nano - g.cost_nano,
        calls = r.calls - g.calls
    FROM gone AS g, locked AS l
    WHERE r.module_id IS NOT DISTINCT FROM g.module_id
      AND r.tier = g.tier AND r.provider = g.provider
      AND l.module_id IS NOT DISTINCT FROM g.module_id
      AND l.tier = g.tier AND l.provider = g.provider;

    DELETE FROM cost_rollup AS r WHERE r.calls = 0;

    UPDATE cost_rollup AS r SET
        simulated = left_over.simulated,
        first_at = left_over.first_at,
        first_seq = left_over.first_seq
    FROM (
        SELECT t.module_id, t.tier, t.provider, BOOL_OR(t.simulated) AS simulated,
               MIN(t.first_at) AS first_at, MIN(t.first_seq) AS first_seq
        FROM cost_totals AS t
        WHERE EXISTS (
            SELECT 1 FROM removed AS d
            WHERE d.module_id IS NOT DISTINCT FROM t.module_id
              AND d.tier = t.tier AND d.provider = t.provider
        )
        GROUP BY t.module_id, t.tier, t.provider
    ) AS left_over
    WHERE r.module_id IS NOT DISTINCT FROM left_over.module_id
      AND r.tier = left_over.tier AND r.provider = left_over.provider;
    RETURN NULL;
END $$;

CREATE TRIGGER cost_totals_shrink_rollup AFTER DELETE ON cost_totals
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_shrink_cost_rollup();

INSERT INTO cost_rollup
    (module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
SELECT module_id, tier, provider, SUM(cost_nano), SUM(calls), BOOL_OR(simulated),
       MIN(first_at), MIN(first_seq)
FROM cost_totals
GROUP BY module_id, tier, provider;
