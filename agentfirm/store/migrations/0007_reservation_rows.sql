-- A reservation carries what its call's ledger row needs (module, tier, provider, model,
-- simulated), so that a reservation left by a process killed mid-call can be booked when the
-- task is taken over: the provider received the request and bills it, so it is booked at its
-- reservation, ``cancelled``, an upper bound (ARCHITECTURE.md §4), instead of vanishing from
-- the ledger. tier NULL: a reservation made without its row (before this migration), dropped at
-- $0 as before.
ALTER TABLE reservations ADD COLUMN module_id TEXT;
ALTER TABLE reservations ADD COLUMN tier TEXT;
ALTER TABLE reservations ADD COLUMN provider TEXT;
ALTER TABLE reservations ADD COLUMN model TEXT;
ALTER TABLE reservations ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;
