// Package e2e holds Hexeract's end-to-end fault and bad-input campaign. Its
// tests build the service in e2e/cmd/e2eservice, start it as separate OS
// processes (producer, relay, consumer) on a real store (PostgreSQL, and on
// RabbitMQ also MariaDB and an SQLite file) and a real transport, kill them
// with SIGKILL mid-batch, cut their database connections, restart the
// database and the brokers (full campaign only), and reconcile every message
// id committed, delivered and applied from the database at the end.
//
// The short campaign runs with the normal suite (go test ./e2e). The full
// campaign, with PostgreSQL, MariaDB, RabbitMQ and NATS restarts and more traffic,
// runs with HEXERACT_E2E_FULL=1; see docs/reliability.md.
package e2e
