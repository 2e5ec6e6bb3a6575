package store

// SchedulerExecutor is the part of [Executor] the scheduler component uses.
// Its operations and their row and parameter types are defined here; every
// driver implements them in its own scheduler.go.
type SchedulerExecutor interface{}
