-- A settle's ledger row moves the running totals (0002, 0004) and the cache rev (0003) itself,
-- with one plain upsert each (plans kept with the function), instead of through the statement
-- triggers, whose transition tables and grouping cost more than the rest of the settle (issue
-- 19). The function says so for the rest of its statement with a transaction-local setting,
-- which the triggers' WHEN clauses read; every other writer of the ledger (a batch of settles, a
-- bulk COPY, a hand-run fix) still goes through the triggers, so the totals keep agreeing with
-- the ledger whoever writes it.

DROP TRIGGER ledger_adds_cost_totals ON ledger;
CREATE TRIGGER ledger_adds_cost_totals AFTER INSERT ON ledger
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT
    WHEN (current_setting('agentfirm.totals_kept', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION agentfirm_add_cost_totals();

DROP TRIGGER ledger_insert_bumps_cache ON ledger;
CREATE TRIGGER ledger_insert_bumps_cache AFTER INSERT ON ledger
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT
    WHEN (current_setting('agentfirm.totals_kept', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION agentfirm_bump_cache_revs('ledger');

DROP TRIGGER cost_totals_add_rollup ON cost_totals;
CREATE TRIGGER cost_totals_add_rollup AFTER INSERT ON cost_totals
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT
    WHEN (current_setting('agentfirm.totals_kept', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION agentfirm_add_cost_rollup();

DROP TRIGGER cost_totals_grow_rollup ON cost_totals;
CREATE TRIGGER cost_totals_grow_rollup AFTER UPDATE ON cost_totals
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT
    WHEN (current_setting('agentfirm.totals_kept', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION agentfirm_grow_cost_rollup();

CREATE OR REPLACE FUNCTION agentfirm_book(
    p_task_id TEXT, p_call_id TEXT, p_module_id TEXT, p_tier TEXT, p_provider TEXT,
    p_model TEXT, p_input_tokens BIGINT, p_cached_input_tokens BIGINT, p_output_tokens BIGINT,
    p_cost_nano BIGINT, p_latency_ms BIGINT, p_outcome TEXT, p_simulated BOOLEAN, p_error TEXT,
    p_at TIMESTAMPTZ, p_now TIMESTAMPTZ, p_booked_dead TEXT,
    OUT cost_nano BIGINT, OUT held BOOLEAN, OUT foreign_task BOOLEAN
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_reserved BIGINT;
    v_seq INTEGER;
BEGIN
    foreign_task := EXISTS (
        SELECT 1 FROM reservations WHERE call_id = p_call_id AND task_id <> p_task_id
    );
    IF foreign_task THEN
        RETURN;
    END IF;
    DELETE FROM reservations WHERE call_id = p_call_id AND task_id = p_task_id
    RETURNING amount_nano INTO v_reserved;
    held := FOUND;
    IF EXISTS (
        SELECT 1 FROM ledger WHERE call_id = p_call_id AND task_id = p_task_id
        AND outcome = 'cancelled' AND error = p_booked_dead
    ) THEN
        IF held THEN
            UPDATE budgets SET reserved_nano = reserved_nano - v_reserved, updated_at = p_now
            WHERE task_id = p_task_id;
        END IF;
        RETURN;
    END IF;
    -- The counter row's latest version, locked: of two settles at once, the second numbers
    -- after the first commits.
    INSERT INTO ledger_counters AS c (task_id, last_seq) VALUES (p_task_id, 1)
    ON CONFLICT (task_id) DO UPDATE SET last_seq = c.last_seq + 1
    RETURNING last_seq INTO v_seq;
    PERFORM set_config('agentfirm.totals_kept', 'on', TRUE);
    INSERT INTO ledger
        (seq, task_id, call_id, module_id, tier, provider, model, input_tokens,
         cached_input_tokens, output_tokens, cost_nano, latency_ms, outcome, simulated, error, at)
    VALUES (v_seq, p_task_id, p_call_id, p_module_id, p_tier, p_provider, p_model,
            p_input_tokens, p_cached_input_tokens, p_output_tokens, p_cost_nano, p_latency_ms,
            p_outcome, p_simulated, p_error, p_at);
    -- What the triggers of 0002, 0003 and 0004 would do for this one row, in their order.
    INSERT INTO cost_totals AS t
        (task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
    VALUES (p_task_id, p_module_id, p_tier, p_provider, p_cost_nano, 1, p_simulated, p_at, v_seq)
    ON CONFLICT ON CONSTRAINT cost_totals_group DO UPDATE SET
        cost_nano = t.cost_nano + excluded.cost_nano,
        calls = t.calls + 1,
        simulated = t.simulated OR excluded.simulated,
        first_at = LEAST(t.first_at, excluded.first_at),
        first_seq = LEAST(t.first_seq, excluded.first_seq);
    INSERT INTO cost_rollup AS r
        (module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq)
    VALUES (p_module_id, p_tier, p_provider, p_cost_nano, 1, p_simulated, p_at, v_seq)
    ON CONFLICT ON CONSTRAINT cost_rollup_group DO UPDATE SET
        cost_nano = r.cost_nano + excluded.cost_nano,
        calls = r.calls + 1,
        simulated = r.simulated OR excluded.simulated,
        first_at = LEAST(r.first_at, excluded.first_at),
        first_seq = LEAST(r.first_seq, excluded.first_seq);
    INSERT INTO cache_revs AS v (task_id, kind, rev)
    VALUES (p_task_id, 'ledger', nextval('cache_rev_seq'))
    ON CONFLICT (task_id, kind) DO UPDATE SET rev = nextval('cache_rev_seq');
    PERFORM set_config('agentfirm.totals_kept', '', TRUE);
    IF held OR p_cost_nano > 0 THEN
        UPDATE budgets SET reserved_nano = reserved_nano - COALESCE(v_reserved, 0),
            spent_nano = spent_nano + p_cost_nano, updated_at = p_now
        WHERE task_id = p_task_id;
    END IF;
    cost_nano := p_cost_nano;
END $$;
