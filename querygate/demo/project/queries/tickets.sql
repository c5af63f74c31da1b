-- name: list_open_tickets_for
-- Open and pending tickets assigned to one person, oldest first.
-- param assignee: text
SELECT id, customer_id, subject, status, created_at
FROM support_tickets
WHERE assignee_email = :assignee
  AND status IN ('open', 'pending')
ORDER BY created_at;

-- name: get_ticket
-- One ticket with the customer who opened it.
-- param ticket_id: text
SELECT t.id, t.subject, t.status, t.assignee_email, t.created_at,
       c.id AS customer_id, c.full_name, c.email, c.phone, c.plan_tier
FROM support_tickets t
JOIN customers c ON c.id = t.customer_id
WHERE t.id = :ticket_id;

-- name: list_customer_tickets
-- A customer's tickets, newest first.
-- param customer_id: int
SELECT id, customer_id, assignee_email, subject, status, created_at
FROM support_tickets
WHERE customer_id = :customer_id
ORDER BY created_at DESC;
