-- name: get_customer_by_id
-- Fetch one customer, for debugging billing issues.
-- param customer_id: int
SELECT * FROM customers WHERE id = :customer_id;

-- name: search_customers
-- Customers whose email starts with a prefix, at most 50, in email order.
-- param email_prefix: text
SELECT id, full_name, email, plan_tier, country, created_at
FROM customers
WHERE email LIKE :email_prefix || '%'
ORDER BY email
LIMIT 50;

-- name: get_customer_overview
-- One customer's profile and how many orders they placed (reads the customer_overview view).
-- param customer_id: int
SELECT id, full_name, email, plan_tier, country, created_at, order_count
FROM customer_overview
WHERE id = :customer_id;

-- name: customers_created_between
-- Customers who signed up between two dates (both inclusive), oldest first, at most 500.
-- param from_date: date
-- param to_date: date
SELECT id, full_name, country, plan_tier, created_at
FROM customers
WHERE created_at >= :from_date::date
  AND created_at < :to_date::date + 1
ORDER BY created_at, id
LIMIT 500;

-- name: customers_by_country
-- How many customers each country has, per plan tier. Aggregates only: no personal data.
SELECT country, plan_tier, count(*) AS customers
FROM customers
GROUP BY country, plan_tier
ORDER BY country, plan_tier;
