-- name: list_customer_payments
-- A customer's payment attempts (card payments show the card's last four digits), newest first.
-- param customer_id: int
SELECT id, order_id, customer_id, amount, method, card_last4, status, created_at
FROM payments
WHERE customer_id = :customer_id
ORDER BY created_at DESC;

-- name: list_failed_payments
-- Failed payment attempts since a moment, newest first, at most 200.
-- param since: timestamptz
SELECT p.id, p.order_id, p.customer_id, p.amount, p.method, p.card_last4, p.created_at
FROM payments p
WHERE p.status = 'failed'
  AND p.created_at >= :since
ORDER BY p.created_at DESC
LIMIT 200;
