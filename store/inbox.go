package store

// InboxExecutor is the part of [Executor] the inbox component uses.
// Its operations and their row and parameter types are defined here; every
// driver implements them in its own inbox.go.
type InboxExecutor interface{}
