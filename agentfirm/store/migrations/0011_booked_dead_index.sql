-- Every ledger row was entered in ledger_by_call (0001), one more page written at each settle's
-- commit (issue 19: what the router adds to a call). The only lookup by call id is a booking's
-- check that its call was not already booked for a dead holder (agentfirm/store/sqlite/booking.py,
-- _BOOK_SQL): a partial index holding just those rows answers it, and an ordinary settle no
-- longer writes to it. The condition is budgets.BOOKED_DEAD (agentfirm/store/sql/budgets.py),
-- term for term, so the planner matches it; a test reads the plan.
DROP INDEX ledger_by_call;
CREATE INDEX ledger_booked_dead ON ledger (call_id)
    WHERE outcome = 'cancelled'
    AND error = 'its process died mid-call: booked at its reservation, an upper bound';
