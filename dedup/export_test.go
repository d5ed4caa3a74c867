package dedup

// MemoryTableSize exposes the number of entries a Memory table holds, expired or not, to tests.
func MemoryTableSize(m *Memory) int {
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	return len(m.t.entries)
}
