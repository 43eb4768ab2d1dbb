-- Bookings in batches (issue 19): the calls of one process that reserve or settle while a
-- booking of the same kind is on its way go together in the next one (agentfirm/store/postgres/
-- batching.py): one round trip, one transaction and one commit for all of them, and a task's
-- budget row locked once a batch instead of once a call, which is where concurrent calls of one
-- task used to queue. Each item gets the answer it would have got alone, in the batch's order.
--
-- Rows are locked in the order every booking takes them, so no two batches, nor a batch and a
-- single booking (0009), can deadlock: budget rows in task order (reserve); for a settle, the
-- reservation of each call, then the tasks' counter rows in task order, then the ledger rows in
-- one statement (whose triggers lock the running totals in key order), then the budget rows in
-- task order.

-- Hold each item's amount if its task's ceiling allows, items in (task, idx) order: (idx, held,
-- the task has a budget, the call holds a reservation already).
CREATE FUNCTION agentfirm_reserve_many(p_items JSONB)
RETURNS TABLE (idx BIGINT, held BOOLEAN, budgeted BOOLEAN, duplicate BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r RECORD;
BEGIN
    FOR r IN
        SELECT * FROM jsonb_to_recordset(p_items) AS x(
            idx BIGINT, task_id TEXT, call_id TEXT, amount BIGINT, now TIMESTAMPTZ,
            module_id TEXT, tier TEXT, provider TEXT, model TEXT, simulated BOOLEAN
        )
        ORDER BY x.task_id, x.idx
    LOOP
        idx := r.idx;
        duplicate := FALSE;
        UPDATE budgets SET reserved_nano = reserved_nano + r.amount, updated_at = r.now
        WHERE task_id = r.task_id AND spent_nano + reserved_nano + r.amount <= ceiling_nano;
        held := FOUND;
        IF held THEN
            budgeted := TRUE;
            INSERT INTO reservations
                (call_id, task_id, amount_nano, created_at, module_id, tier, provider, model,
                 simulated)
            VALUES (r.call_id, r.task_id, r.amount, r.now, r.module_id, r.tier,
                    r.provider, r.model, r.simulated)
            ON CONFLICT (call_id) DO NOTHING;
            IF NOT FOUND THEN
                UPDATE budgets SET reserved_nano = reserved_nano - r.amount
                WHERE task_id = r.task_id;
                held := FALSE;
                duplicate := TRUE;
            END IF;
        ELSE
            budgeted := EXISTS (SELECT 1 FROM budgets WHERE task_id = r.task_id);
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;

-- One item of a settle batch: the ledger row as given, then what the batch found.
CREATE TYPE agentfirm_booking AS (
    idx BIGINT,
    task_id TEXT,
    call_id TEXT,
    module_id TEXT,
    tier TEXT,
    provider TEXT,
    model TEXT,
    input_tokens BIGINT,
    cached_input_tokens BIGINT,
    output_tokens BIGINT,
    cost_nano BIGINT,
    latency_ms BIGINT,
    outcome TEXT,
    simulated BOOLEAN,
    error TEXT,
    at TIMESTAMPTZ,
    reserved BIGINT,
    held BOOLEAN,
    foreign_task BOOLEAN,
    booked BOOLEAN
);

-- agentfirm_book (0009) for each item, call ids all different: (idx, the cost booked or NULL,
-- whether a reservation was held, whether the call id holds another task's reservation).
CREATE FUNCTION agentfirm_book_many(p_items JSONB, p_now TIMESTAMPTZ, p_booked_dead TEXT)
RETURNS TABLE (idx BIGINT, cost_nano BIGINT, held BOOLEAN, foreign_task BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r agentfirm_booking;
    v_items agentfirm_booking[] := '{}';
    v_reserved BIGINT;
    t RECORD;
BEGIN
    FOR r IN
        SELECT * FROM jsonb_populate_recordset(NULL::agentfirm_booking, p_items) AS x
        ORDER BY x.task_id, x.idx
    LOOP
        r.held := FALSE;
        r.booked := FALSE;
        r.reserved := 0;
        r.foreign_task := EXISTS (
            SELECT 1 FROM reservations WHERE call_id = r.call_id AND task_id <> r.task_id
        );
        IF NOT r.foreign_task THEN
            DELETE FROM reservations WHERE call_id = r.call_id AND task_id = r.task_id
            RETURNING amount_nano INTO v_reserved;
            r.held := FOUND;
            r.reserved := COALESCE(v_reserved, 0);
            r.booked := NOT EXISTS (
                SELECT 1 FROM ledger WHERE call_id = r.call_id AND task_id = r.task_id
                AND outcome = 'cancelled' AND error = p_booked_dead
            );
        END IF;
        v_items := v_items || r;
    END LOOP;

    WITH b AS (SELECT * FROM unnest(v_items) WHERE booked),
    counts AS (SELECT task_id, COUNT(*)::INTEGER AS n FROM b GROUP BY task_id),
    numbered AS (
        INSERT INTO ledger_counters AS c (task_id, last_seq)
        SELECT task_id, n FROM counts ORDER BY task_id
        ON CONFLICT (task_id) DO UPDATE SET last_seq = c.last_seq + excluded.last_seq
        RETURNING c.task_id, c.last_seq
    )
    INSERT INTO ledger
        (seq, task_id, call_id, module_id, tier, provider, model, input_tokens,
         cached_input_tokens, output_tokens, cost_nano, latency_ms, outcome, simulated, error, at)
    SELECT (numbered.last_seq - counts.n
            + ROW_NUMBER() OVER (PARTITION BY b.task_id ORDER BY b.idx))::INTEGER,
           b.task_id, b.call_id, b.module_id, b.tier, b.provider, b.model, b.input_tokens,
           b.cached_input_tokens, b.output_tokens, b.cost_nano, b.latency_ms, b.outcome,
           b.simulated, b.error, b.at
    FROM b JOIN counts ON counts.task_id = b.task_id
    JOIN numbered ON numbered.task_id = b.task_id;

    FOR t IN
        SELECT task_id, SUM(reserved) AS reserved,
               SUM(CASE WHEN booked THEN cost_nano ELSE 0 END) AS spent
        FROM unnest(v_items)
        WHERE held OR (booked AND cost_nano > 0)
        GROUP BY task_id ORDER BY task_id
    LOOP
        UPDATE budgets SET reserved_nano = reserved_nano - t.reserved,
            spent_nano = spent_nano + t.spent, updated_at = p_now
        WHERE task_id = t.task_id;
    END LOOP;

    RETURN QUERY
    SELECT u.idx, CASE WHEN u.booked THEN u.cost_nano END, u.held, u.foreign_task
    FROM unnest(v_items) AS u;
END $$;
