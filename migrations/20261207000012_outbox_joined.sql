-- Card refreshes that join a waiting one. A ticket's refreshes are paced to about one a
-- second; those queued within the second used to be rows of their own, all delivered by the
-- first. Now a refresh whose destination's last pending row is the one waiting for that second
-- (not yet attempted) joins it: its note and answered card are appended to that row's `joined`
-- (a JSON array of `{"key", "note", "answered"}`, in the order written) instead of a row, its
-- three index entries and its settling being written (BENCHMARKS.md, session 14).
ALTER TABLE outbox ADD COLUMN joined TEXT;
