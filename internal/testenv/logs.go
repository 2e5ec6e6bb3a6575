package testenv

import (
	"strings"
	"sync"
)

// Logs collects log output written from several goroutines (a
// slog.Handler's writer, say), for tests that check what was logged.
type Logs struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count returns how many times s occurs in what was written so far.
func (l *Logs) Count(s string) int { return strings.Count(l.String(), s) }
