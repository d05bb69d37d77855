-- A card refresh that failed part-way remembers which copies it had finished (and which queued
-- rows it carried), so that its retry skips them: a note is said once in each card's thread.
ALTER TABLE outbox ADD COLUMN progress TEXT;
