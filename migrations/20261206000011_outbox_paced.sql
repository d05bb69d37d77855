-- The worker walks due rows in the order they fall due: a ticket's card refreshes are paced
-- to about one a second (the first at once, those that follow within the second together),
-- so many pending rows wait for a later time, and a walk of every pending row in id order
-- would pass over all of them on each round (BENCHMARKS.md, session 13).
--
-- The id-ordered index of pending rows is no longer read. The due index keeps pending rows
-- only: a delivery took its entry from the 'pending' part to the 'sent' part, which held every
-- row ever sent; the dead-letter count gets an index of its own (dead rows are few).
DROP INDEX outbox_pending_by_id;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (id) WHERE state = 'dead';
