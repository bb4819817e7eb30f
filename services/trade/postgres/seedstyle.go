package postgres

import (
	"context"
	"fmt"

	"github.com/paytrade/paytrade/services/trade"
)

// MarkPaidUnconditionally is the course's first markOrderPaySuccess, kept
// to be broken by make chaos UNSAFE=1: no inbox and no condition but the
// id, so every copy of a message pays the order again, whatever it has
// become, whoever paid and however much. The schema's CHECKs still refuse
// to make a cancelled order paid.
func (s *Store) MarkPaidUnconditionally(ctx context.Context, p trade.Payment) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE orders SET status = $2, pay_time = $3, update_time = $4 WHERE id = $1`,
		p.BizOrderNo, trade.Paid, p.PaidAt.UTC(), s.clock())
	if err != nil {
		return false, fmt.Errorf("mark order %d paid unconditionally: %w", p.BizOrderNo, err)
	}
	return tag.RowsAffected() == 1, nil
}
