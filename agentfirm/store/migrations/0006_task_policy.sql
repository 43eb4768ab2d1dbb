-- A task's policies (domain/policy.py: offline, latency, runner, proposed budget, personas
-- directory, --yes), written with the task before intake so whoever drives it serves it the same
-- way. JSON; '{}' is every default (tasks created before this column existed).
ALTER TABLE tasks ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
