-- Running cost totals per task x module x tier x provider, so a cost summary reads a few dozen
-- rows instead of aggregating the whole ledger. Triggers keep them in the same transaction as
-- the ledger rows they count, whatever writes the ledger (the store's settle and record_call,
-- a bulk COPY, a hand-run fix), so the totals can never disagree with the ledger.
-- first_at and first_seq keep the groups in order of first appearance on the ledger.

CREATE TABLE cost_totals (
    task_id TEXT COLLATE "C" NOT NULL,
    module_id TEXT,
    tier TEXT NOT NULL,
    provider TEXT NOT NULL,
    cost_nano BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    simulated BOOLEAN NOT NULL,
    first_at TIMESTAMPTZ NOT NULL,
    first_seq INTEGER NOT NULL,
    CONSTRAINT cost_totals_group UNIQUE NULLS NOT DISTINCT (task_id, module_id, tier, provider)
);

-- Inserts (one row from settle, a million from COPY) are folded in one statement per statement,
-- in key order so concurrent writers lock the total rows in the same order.
CREATE FUNCTION agentfirm_add_cost_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cost_totals AS t
        (task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
    SELECT task_id, module_id, tier, provider, SUM(cost_nano), COUNT(*), BOOL_OR(simulated),
           MIN(at), MIN(seq)
    FROM added
    GROUP BY task_id, module_id, tier, provider
    ORDER BY task_id, module_id, tier, provider
    ON CONFLICT ON CONSTRAINT cost_totals_group DO UPDATE SET
        cost_nano = t.cost_nano + excluded.cost_nano,
        calls = t.calls + excluded.calls,
        simulated = t.simulated OR excluded.simulated,
        first_at = LEAST(t.first_at, excluded.first_at),
        first_seq = LEAST(t.first_seq, excluded.first_seq);
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_adds_cost_totals AFTER INSERT ON ledger
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_add_cost_totals();

-- The store never changes or deletes a ledger row; if someone does, the groups touched are
-- counted again from the ledger itself.
CREATE FUNCTION agentfirm_recount_cost_group(
    p_task TEXT, p_module TEXT, p_tier TEXT, p_provider TEXT
) RETURNS void LANGUAGE sql AS $$
    DELETE FROM cost_totals
    WHERE task_id = p_task AND module_id IS NOT DISTINCT FROM p_module
      AND tier = p_tier AND provider = p_provider;
    INSERT INTO cost_totals
        (task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
    SELECT task_id, module_id, tier, provider, SUM(cost_nano), COUNT(*), BOOL_OR(simulated),
           MIN(at), MIN(seq)
    FROM ledger
    WHERE task_id = p_task AND module_id IS NOT DISTINCT FROM p_module
      AND tier = p_tier AND provider = p_provider
    GROUP BY task_id, module_id, tier, provider;
$$;

CREATE FUNCTION agentfirm_recount_cost_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM agentfirm_recount_cost_group(OLD.task_id, OLD.module_id, OLD.tier, OLD.provider);
    IF TG_OP = 'UPDATE' THEN
        PERFORM agentfirm_recount_cost_group(NEW.task_id, NEW.module_id, NEW.tier, NEW.provider);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_recounts_cost_totals AFTER UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION agentfirm_recount_cost_totals();

CREATE FUNCTION agentfirm_clear_cost_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM cost_totals;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_truncate_clears_cost_totals AFTER TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION agentfirm_clear_cost_totals();

INSERT INTO cost_totals
    (task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
SELECT task_id, module_id, tier, provider, SUM(cost_nano), COUNT(*), BOOL_OR(simulated),
       MIN(at), MIN(seq)
FROM ledger
GROUP BY task_id, module_id, tier, provider;
