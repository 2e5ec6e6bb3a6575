package store

// OutboxExecutor is the part of [Executor] the outbox component uses.
// Its operations and their row and parameter types are defined here; every
// driver implements them in its own outbox.go.
type OutboxExecutor interface{}
