package store

// SagaExecutor is the part of [Executor] the saga component uses.
// Its operations and their row and parameter types are defined here; every
// driver implements them in its own saga.go.
type SagaExecutor interface{}
