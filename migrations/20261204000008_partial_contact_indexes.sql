-- Tickets without a contact are left out of the contact indexes: a ticket made in chat has
-- neither an individual nor an organization, and every such insert wrote two more index pages
-- (each desk's NULLs sit in their own part of the index; with many desks, a page each). The
-- history queries compare these columns with `=` or `IN`, which implies IS NOT NULL, so
-- SQLite still uses the indexes for them (BENCHMARKS.md).
DROP INDEX tickets_by_individual;
DROP INDEX tickets_by_organization;
CREATE INDEX tickets_by_individual ON tickets (desk_id, individual_id, created_at DESC)
    WHERE individual_id IS NOT NULL;
CREATE INDEX tickets_by_organization ON tickets (desk_id, organization_id, created_at DESC)
    WHERE organization_id IS NOT NULL;
