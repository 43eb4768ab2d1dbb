-- A budget's running totals are kept by SQLite itself, in the statement that changes the rows
-- they sum: reserved_nano follows the task's reservations, spent_nano its ledger costs. Each of
-- the router's bookings (reserve before a call, settle or record it after, release what a dead
-- process left) is then ONE statement: one trip to the database thread and one implicit
-- transaction, where the explicit transactions of the first version took four to six.
-- The atomicity is the same: a write statement holds the write lock from its first step, so
-- the ceiling check inside ``reserve``'s INSERT … SELECT and the increment below cannot be
-- separated by another writer, in this process or any other.

CREATE TRIGGER reservation_holds_budget AFTER INSERT ON reservations BEGIN
    UPDATE budgets SET reserved_nano = reserved_nano + NEW.amount_nano,
        updated_at = NEW.created_at
    WHERE task_id = NEW.task_id;
END;

CREATE TRIGGER reservation_frees_budget AFTER DELETE ON reservations BEGIN
    UPDATE budgets SET reserved_nano = reserved_nano - OLD.amount_nano,
        updated_at = strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')
    WHERE task_id = OLD.task_id;
END;

-- A ledger row closes its attempt: the call's reservation is dropped and its cost (already
-- clamped to that reservation by the inserting statement) is spent.
CREATE TRIGGER ledger_row_settles_budget AFTER INSERT ON ledger BEGIN
    DELETE FROM reservations WHERE call_id = NEW.call_id;
    UPDATE budgets SET spent_nano = spent_nano + NEW.cost_nano, updated_at = NEW.at
    WHERE task_id = NEW.task_id AND NEW.cost_nano <> 0;
END;

-- A row naming another task than the one its call reserved for is a caller's bug: refused
-- whole, so neither task's budget moves.
CREATE TRIGGER ledger_row_matches_reservation BEFORE INSERT ON ledger
WHEN EXISTS (
    SELECT 1 FROM reservations WHERE call_id = NEW.call_id AND task_id <> NEW.task_id
)
BEGIN
    SELECT RAISE(ABORT, 'agentfirm: call reserved budget of another task');
END;

-- Start from totals that match the rows, whatever wrote them before.
UPDATE budgets SET reserved_nano = (
    SELECT COALESCE(SUM(amount_nano), 0) FROM reservations r WHERE r.task_id = budgets.task_id
);
