package reconcile

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/trade"
)

// Rule is one rule of the ledger or of refunds, within one database: a
// query listing what breaks it. Run reports its findings in detail;
// CheckPay and CheckTrade count them for the tests and the fault suite, so
// the rules have one home whoever checks them.
type Rule struct {
	Name  string
	Query string
}

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// names spells the domains' states into the rules' SQL, so a status
// number is written once, in its domain package.
var names = strings.NewReplacer(
	"{pay.Paid}", fmt.Sprint(int(pay.Paid)),
	"{pay.Refunded}", fmt.Sprint(int(pay.Refunded)),
	"{trade.Unpaid}", fmt.Sprint(int(trade.Unpaid)),
	"{trade.Paid}", fmt.Sprint(int(trade.Paid)),
	"{trade.Shipped}", fmt.Sprint(int(trade.Shipped)),
	"{trade.Received}", fmt.Sprint(int(trade.Received)),
	"{trade.Cancelled}", fmt.Sprint(int(trade.Cancelled)),
	"{trade.Finished}", fmt.Sprint(int(trade.Finished)),
	"{trade.Refunded}", fmt.Sprint(int(trade.Refunded)),
	"{trade.RefundRequested}", "'"+string(trade.RefundRequested)+"'",
	"{trade.RefundRefunded}", "'"+string(trade.RefundRefunded)+"'",
	"{trade.RefundRejected}", "'"+string(trade.RefundRejected)+"'",
	"{trade.ReasonUserRequest}", "'"+trade.ReasonUserRequest+"'",
	"{pay.RefundCredited}", "'"+string(pay.RefundCredited)+"'",
)

func sql(s string) string { return names.Replace(s) }

// The pay database's rules.
var (
	// ruleLedgerDrift: every balance is the sum of its ledger (invariant 3).
	ruleLedgerDrift = Rule{CheckLedgerDrift, sql(`
		SELECT a.user_id, a.balance, coalesce(l.total, 0)
		FROM accounts a
		LEFT JOIN (SELECT user_id, sum(amount) AS total FROM ledger_entries GROUP BY user_id) l USING (user_id)
		WHERE a.balance <> coalesce(l.total, 0)
		ORDER BY a.user_id`)}

	// ruleNegativeBalance: no balance below zero (invariant 2).
	ruleNegativeBalance = Rule{CheckNegativeBalances, `SELECT user_id, balance FROM accounts WHERE balance < 0 ORDER BY user_id`}

	// ruleDebits: a paid pay order has exactly one debit of its amount from
	// its payer, nothing else has any (invariant 1).
	ruleDebits = Rule{CheckDebits, sql(`
		SELECT coalesce(p.id, d.pay_order_id, 0), coalesce(p.biz_order_no, 0), coalesce(p.status, -1),
			coalesce(p.biz_user_id, 0), coalesce(p.amount, 0), coalesce(d.n, 0), coalesce(d.total, 0),
			CASE
				WHEN p.id IS NULL THEN 'debit of no pay order'
				WHEN p.status NOT IN ({pay.Paid}, {pay.Refunded}) THEN 'debit of a pay order that is not paid'
				WHEN d.n IS NULL THEN 'paid without a debit'
				WHEN d.n > 1 THEN 'paid with ' || d.n || ' debits'
				WHEN d.total <> -p.amount THEN 'debit of ' || d.total || ', want ' || -p.amount
				ELSE 'debit from user ' || d.other_user || ', not the payer'
			END
		FROM pay_orders p
		FULL JOIN (
			SELECT pay_order_id, count(*) AS n, sum(amount) AS total, min(user_id) FILTER (WHERE user_id <> payer) AS other_user
			FROM (SELECT l.pay_order_id, l.amount, l.user_id, po.biz_user_id AS payer
				FROM ledger_entries l LEFT JOIN pay_orders po ON po.id = l.pay_order_id
				WHERE l.kind = 'debit') x
			GROUP BY pay_order_id
		) d ON d.pay_order_id = p.id
		WHERE (p.id IS NULL)
			OR (p.status IN ({pay.Paid}, {pay.Refunded}) AND (d.n IS DISTINCT FROM 1 OR d.total <> -p.amount OR d.other_user IS NOT NULL))
			OR (p.status NOT IN ({pay.Paid}, {pay.Refunded}) AND d.n IS NOT NULL)
		ORDER BY 2, 1`)}

	// ruleCredits: a pay order's credits add up to its refunded amount,
	// never above what was paid, each to its payer, each of a refund id
	// credited once, and only a paid pay order has any (invariant 8).
	ruleCredits = Rule{CheckCredits, sql(`
		SELECT coalesce(p.id, c.pay_order_id, 0), coalesce(p.biz_order_no, 0), coalesce(p.status, -1),
			coalesce(p.amount, 0), coalesce(p.refunded_amount, 0), coalesce(c.n, 0), coalesce(c.total, 0),
			CASE
				WHEN p.id IS NULL THEN 'credit of no pay order'
				WHEN p.status NOT IN ({pay.Paid}, {pay.Refunded}) THEN 'credit of a pay order that is not paid'
				WHEN coalesce(c.total, 0) > p.amount THEN 'credited ' || c.total || ', more than the ' || p.amount || ' paid'
				WHEN coalesce(c.total, 0) <> p.refunded_amount THEN 'credited ' || coalesce(c.total, 0) || ', refunded amount ' || p.refunded_amount
				WHEN c.other_user IS NOT NULL THEN 'credit to user ' || c.other_user || ', not the payer'
				WHEN c.repeated > 0 THEN c.repeated || ' refund ids credited more than once'
				ELSE 'credit that no refund decision records'
			END
		FROM pay_orders p
		FULL JOIN (
			SELECT pay_order_id, count(*) AS n, sum(amount) AS total,
				min(user_id) FILTER (WHERE user_id <> payer) AS other_user,
				count(*) - count(DISTINCT refund_id) AS repeated,
				count(*) FILTER (WHERE NOT decided) AS undecided
			FROM (SELECT l.pay_order_id, l.amount, l.user_id, l.refund_id, po.biz_user_id AS payer,
					EXISTS (SELECT FROM refunds r WHERE r.refund_id = l.refund_id AND r.outcome = {pay.RefundCredited}
						AND r.pay_order_id = l.pay_order_id AND r.amount = l.amount) AS decided
				FROM ledger_entries l LEFT JOIN pay_orders po ON po.id = l.pay_order_id
				WHERE l.kind = 'refund') x
			GROUP BY pay_order_id
		) c ON c.pay_order_id = p.id
		WHERE (p.id IS NULL)
			OR (c.n IS NOT NULL AND p.status NOT IN ({pay.Paid}, {pay.Refunded}))
			OR coalesce(c.total, 0) <> p.refunded_amount OR coalesce(c.total, 0) > p.amount
			OR c.other_user IS NOT NULL OR c.repeated > 0 OR c.undecided > 0
		ORDER BY 2, 1`)}

	// ruleMoney: funding = balances + paid − credited (invariant 3), by
	// the pay orders, so money a wallet got without a ledger row shows.
	ruleMoney = Rule{CheckMoney, sql(`
		SELECT f.total, b.total, p.paid, p.refunded
		FROM (SELECT coalesce(sum(amount), 0) AS total FROM ledger_entries WHERE kind = 'funding') f,
			(SELECT coalesce(sum(balance), 0) AS total FROM accounts) b,
			(SELECT coalesce(sum(amount), 0) AS paid, coalesce(sum(refunded_amount), 0) AS refunded
				FROM pay_orders WHERE status IN ({pay.Paid}, {pay.Refunded})) p
		WHERE f.total <> b.total + p.paid - p.refunded`)}
)

// PayRules are the rules of the pay database, in the order Run reports them.
var PayRules = []Rule{ruleLedgerDrift, ruleNegativeBalance, ruleDebits, ruleCredits, ruleMoney}

// The trade database's rules.
var (
	// ruleOrderRefunds: an order's refunded and claimed amounts are what its
	// own refunds say, within its total, and it is refunded (7) exactly
	// when credited in full (invariant 8: trade moves an order only with
	// its own refund rows).
	ruleOrderRefunds = Rule{CheckOrderRefunds, sql(`
		SELECT o.id, o.status, o.total_fee, o.refunded_amount, o.refund_claimed, coalesce(r.refunded, 0), coalesce(r.claimed, 0)
		FROM orders o
		LEFT JOIN (
			SELECT order_id,
				sum(amount) FILTER (WHERE status = {trade.RefundRefunded}) AS refunded,
				sum(amount) FILTER (WHERE status <> {trade.RefundRejected}) AS claimed
			FROM refunds WHERE reason = {trade.ReasonUserRequest} GROUP BY order_id
		) r ON r.order_id = o.id
		WHERE o.refunded_amount <> coalesce(r.refunded, 0) OR o.refund_claimed <> coalesce(r.claimed, 0)
			OR o.refund_claimed > o.total_fee
			OR (o.status = {trade.Refunded}) <> (o.refunded_amount = o.total_fee)
		ORDER BY o.id`)}

	// ruleUnsettledRejections: a refund pay rejected waits for an operator
	// (invariant 9: "or rejected with a reason an operator settles").
	ruleUnsettledRejections = Rule{CheckUnsettledRejections, sql(`
		SELECT id::text, order_id, amount, coalesce(rejection, '')
		FROM refunds WHERE status = {trade.RefundRejected} AND settlement IS NULL
		ORDER BY requested_at, id`)}
)

// TradeRules are the rules of the trade database, in the order Run reports them.
var TradeRules = []Rule{ruleOrderRefunds, ruleUnsettledRejections}

// Breaches counts, by rule name, the rows that break each rule; a rule
// that holds is absent.
type Breaches map[string]int64

// CheckPay counts what breaks each of PayRules in the pay database.
func CheckPay(ctx context.Context, db Querier) (Breaches, error) {
	return check(ctx, db, PayRules)
}

// CheckTrade counts what breaks each of TradeRules in the trade database.
func CheckTrade(ctx context.Context, db Querier) (Breaches, error) {
	return check(ctx, db, TradeRules)
}

func check(ctx context.Context, db Querier, rules []Rule) (Breaches, error) {
	b := Breaches{}
	for _, r := range rules {
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM (`+r.Query+`) broken`).Scan(&n); err != nil {
			return nil, fmt.Errorf("check %s: %w", r.Name, err)
		}
		if n > 0 {
			b[r.Name] = n
		}
	}
	return b, nil
}
