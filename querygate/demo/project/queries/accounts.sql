-- name: get_account_balances
-- A customer's accounts with their IBAN, currency, balance and status, oldest first.
-- param customer_id: int
SELECT id, customer_id, iban, currency, balance, status, opened_at
FROM accounts
WHERE customer_id = :customer_id
ORDER BY opened_at;
