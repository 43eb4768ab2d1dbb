-- reservations_by_task (0001) was one more page written by every reserve and every settle
-- (issue 19: what the router adds to a call). The table holds only the calls in flight (a
-- reservation goes when its call is booked, and a dead holder's when its task is taken over or
-- ends), so what asks by task — a task's view of its calls in flight, the release of a dead
-- holder's reservations, a budget's deletion cascading to them — reads a few rows without it.
DROP INDEX reservations_by_task;
