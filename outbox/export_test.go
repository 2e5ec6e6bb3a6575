package outbox

// IgnoreLocalSignals makes r ignore Outbox.Signal calls of its own process,
// so tests and benchmarks can measure the PostgreSQL notification path as
// another process would see it.
func IgnoreLocalSignals(r *Relay) { r.noLocal = true }
