package dedup

// idMarks counts the live ID marks of a Memory table.
func idMarks(m *Memory) int {
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	now := m.t.now()
	n := 0
	for _, e := range m.t.ids {
		if e.done && !expiredAt(e.expires, now) {
			n++
		}
	}
	return n
}
