-- Pending outbox rows in id order, for the worker's "oldest pending row of each destination"
-- query: it walks this small index and stops at its limit, where the (state, next_attempt_at)
-- index made it sort every pending row on each pass (30 ms a pass at 31,000 pending rows,
-- 0.3 ms with this index; BENCHMARKS.md).
CREATE INDEX outbox_pending_by_id ON outbox (id) WHERE state = 'pending';
