package postgres

// ForgetSeenLocks makes s ask the database about every wallet again, as
// it does once lockMemo has passed: for tests that move a lock's end on
// the database's clock.
func (s *Store) ForgetSeenLocks() {
	s.wallets.mu.Lock()
	defer s.wallets.mu.Unlock()
	clear(s.wallets.locked)
}
