// Package interop holds the polyglot interoperability test: a Node.js
// service written with the official CloudEvents SDK (interop/node) exchanges
// events with a Hexeract Go service over RabbitMQ and over Kafka, in both
// directions and in CloudEvents binary and structured content mode, and a
// malformed event from Node ends in Hexeract's dead-letter topic. Go-only
// tests feed Dapr's envelope and wrong-shaped structured events to an App.
// See docs/interop.md.
//
// The test needs Node.js 20 or later with npm. It installs the Node
// dependencies itself (npm ci in interop/node, pinned by its
// package-lock.json) on first use and whenever the lock file changes, and
// fails, saying what is missing, when node or npm is not installed.
package interop
