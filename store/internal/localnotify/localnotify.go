// Package localnotify is the in-process notifier of the drivers whose
// database has no LISTEN/NOTIFY (MySQL, MariaDB, SQLite): Notify wakes the
// listeners of the same Hub, which belongs to one driver value, and the
// listeners poll for what other processes commit.
package localnotify

import (
	"context"
	"sync"
)

// Hub fans notifications out to the listeners of each channel. The zero
// value is ready to use.
type Hub struct {
	mu        sync.Mutex
	listeners map[string]map[*listener]struct{}
}

type listener struct{ wake chan struct{} }

// Notify wakes every listener of channel; a listener that is already
// awake keeps one pending wake-up.
func (h *Hub) Notify(_ context.Context, channel string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.listeners[channel] {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Listen calls ready once, then wake on each notification of channel,
// until ctx ends.
func (h *Hub) Listen(ctx context.Context, channel string, ready, wake func()) error {
	l := &listener{wake: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.listeners == nil {
		h.listeners = map[string]map[*listener]struct{}{}
	}
	if h.listeners[channel] == nil {
		h.listeners[channel] = map[*listener]struct{}{}
	}
	h.listeners[channel][l] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.listeners[channel], l)
		if len(h.listeners[channel]) == 0 {
			delete(h.listeners, channel)
		}
		h.mu.Unlock()
	}()
	if ready != nil {
		ready()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.wake:
			if wake != nil {
				wake()
			}
		}
	}
}

// CrossProcess reports false: the hub reaches this process only.
func (h *Hub) CrossProcess() bool { return false }
