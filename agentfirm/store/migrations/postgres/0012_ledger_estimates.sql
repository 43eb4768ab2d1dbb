-- The rows booked at their reservation, an upper bound ("≤": sent, abandoned, no usage reported
-- yet), are what `agentfirm costs` sums as estimates and what reconciliation looks up and books
-- again once the provider's record of the call is found (its usage then fills the row). A
-- partial index holds just those few rows: the sum is a seek per task that never visits the
-- ledger's rows, however many calls the task made. The condition is the store's ESTIMATED
-- (agentfirm/store/sql/budgets.py), term for term, so the planner matches it; its columns are
-- in the index too, as SQLite covers a query only with columns the index itself holds.
CREATE INDEX ledger_estimates ON ledger
    (task_id, outcome, cost_nano, input_tokens, cached_input_tokens, output_tokens)
    WHERE outcome = 'cancelled' AND cost_nano > 0
    AND input_tokens = 0 AND cached_input_tokens = 0 AND output_tokens = 0;
