-- A router call's two bookings become server-side functions, each still one round trip (issue
-- 19). A statement sent as text is parsed and planned again every time (the store sends no
-- prepared statements, which a transaction pooler cannot keep): for the settle's statement that
-- was two thirds of the server's work. Statements inside a plpgsql function are planned once per
-- server session and kept with the function, whoever's transaction it runs in, so they are safe
-- behind a pooler too.
--
-- A settle takes the budget row last: after the task's counter row and its ledger row (whose
-- triggers move the running totals and the cache rev), so concurrent reserves of the task wait
-- for the tail of a settle only. Every booking takes these rows in this one order (as
-- ``release_reservations`` does), so two bookings never deadlock. A reserve takes the budget row
-- first, as before: its reservation's foreign-key check then finds the row already locked by its
-- own transaction rather than sharing another's lock.

-- Hold p_amount for the call if the ceiling allows: (held, the task has a budget). A call that
-- holds a reservation already fails with unique_violation.
CREATE FUNCTION agentfirm_reserve(
    p_task_id TEXT, p_call_id TEXT, p_amount BIGINT, p_now TIMESTAMPTZ, p_module_id TEXT,
    p_tier TEXT, p_provider TEXT, p_model TEXT, p_simulated BOOLEAN,
    OUT held BOOLEAN, OUT budgeted BOOLEAN
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    UPDATE budgets SET reserved_nano = reserved_nano + p_amount, updated_at = p_now
    WHERE task_id = p_task_id AND spent_nano + reserved_nano + p_amount <= ceiling_nano;
    held := FOUND;
    IF held THEN
        INSERT INTO reservations
            (call_id, task_id, amount_nano, created_at, module_id, tier, provider, model,
             simulated)
        VALUES (p_call_id, p_task_id, p_amount, p_now, p_module_id, p_tier, p_provider, p_model,
                p_simulated);
        budgeted := TRUE;
    ELSE
        budgeted := EXISTS (SELECT 1 FROM budgets WHERE task_id = p_task_id);
    END IF;
END $$;

-- Release the call's reservation (if any), spend the cost as reported (never clamped to the
-- reservation: the ledger is the bill) and write the ledger row with the same cost, numbered
-- from the task's counter row, so the ledger always sums to spent. Returns the cost booked
-- (NULL: nothing booked), whether a reservation was held, and whether the call id holds a
-- reservation of another task (then nothing is touched: the caller refuses the call).
-- p_booked_dead is the error of a row booked for a dead holder (``release_reservations``): a
-- call booked so is not booked again when its holder turns out to have been only slow.
CREATE FUNCTION agentfirm_book(
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
    INSERT INTO ledger
        (seq, task_id, call_id, module_id, tier, provider, model, input_tokens,
         cached_input_tokens, output_tokens, cost_nano, latency_ms, outcome, simulated, error, at)
    VALUES (v_seq, p_task_id, p_call_id, p_module_id, p_tier, p_provider, p_model,
            p_input_tokens, p_cached_input_tokens, p_output_tokens, p_cost_nano, p_latency_ms,
            p_outcome, p_simulated, p_error, p_at);
    IF held OR p_cost_nano > 0 THEN
        UPDATE budgets SET reserved_nano = reserved_nano - COALESCE(v_reserved, 0),
            spent_nano = spent_nano + p_cost_nano, updated_at = p_now
        WHERE task_id = p_task_id;
    END IF;
    cost_nano := p_cost_nano;
END $$;
