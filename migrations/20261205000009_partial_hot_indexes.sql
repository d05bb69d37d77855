-- Indexes that every create and every delivery touch, kept to the rows their queries read
-- (BENCHMARKS.md: the pages a commit writes, counted from the WAL under load).
--
-- The outbox's per-destination index held every row ever sent: a delivery moved its entry
-- from the 'pending' part to the 'sent' part, two random pages, and the index grew without
-- end. Only the worker's "oldest pending row of each destination" probe reads it, always for
-- 'pending'; `state` stays in the key so that probe is answered from the index alone.
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (state, destination, id) WHERE state = 'pending';

-- A new ticket is unassigned: its (desk, NULL, 'open') entry was a random page for every
-- create. The index serves "assigned to X" (lists, per-assignee digest counts); the
-- unassigned counts and lists read the desk's active tickets through tickets_by_status.
DROP INDEX tickets_by_assignee;
CREATE INDEX tickets_by_assignee ON tickets (desk_id, assignee, status) WHERE assignee IS NOT NULL;

-- A ticket's cards' destination now leads with the ticket ('ticket:{id}:{surface}', was
-- '{surface}:ticket:{id}'), so new rows go in at the end of that index. Rows still pending
-- move to the new form, so a ticket's queued post and later edits keep one order.
UPDATE outbox
   SET destination = 'ticket:' || substr(destination, instr(destination, ':ticket:') + 8)
                     || ':' || substr(destination, 1, instr(destination, ':ticket:') - 1)
 WHERE state = 'pending' AND instr(destination, ':ticket:') > 0;
