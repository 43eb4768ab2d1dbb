-- A covering index for what `agentfirm costs` reads from the ledger itself: the part booked as
-- upper bounds (`outcome = 'cancelled'`: a seek, however many calls the task made) and a task's
-- sums, read from the index without visiting the table's rows.
CREATE INDEX ledger_cost_by_task ON ledger (task_id, outcome, cost_nano);
