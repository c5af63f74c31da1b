-- name: get_order_by_id
-- One order with the customer who placed it.
-- param order_id: text
SELECT o.id, o.amount, o.currency, o.status, o.created_at,
       c.id AS customer_id, c.full_name, c.email, c.plan_tier
FROM orders o
JOIN customers c ON c.id = o.customer_id
WHERE o.id = :order_id;

-- name: list_customer_orders
-- A customer's orders, newest first.
-- param customer_id: int
SELECT id, customer_id, amount, currency, status, created_at
FROM orders
WHERE customer_id = :customer_id
ORDER BY created_at DESC;

-- name: revenue_by_plan
-- Paid orders and revenue per plan tier and currency since a date. Aggregates only: no personal data.
-- param since: date
SELECT c.plan_tier, o.currency, count(*) AS paid_orders, sum(o.amount) AS revenue
FROM orders o
JOIN customers c ON c.id = o.customer_id
WHERE o.status = 'paid'
  AND o.created_at >= :since::date
GROUP BY c.plan_tier, o.currency
ORDER BY c.plan_tier, o.currency;
