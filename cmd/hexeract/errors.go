package main

import (
	"regexp"
	"strings"
)

// withTableAdvice matches the Go API's advice in table-name errors ("pass a
// name ... to WithTable", "to scheduler.WithTable").
var withTableAdvice = regexp.MustCompile(`to (?:[a-z]+\.)?WithTable\b`)

// exitMessage is the line main prints for err: "hexeract: " once (library
// errors often start with it already), and the command-line flag in place of
// the Go option a library error advises (--table, not WithTable).
func exitMessage(err error) string {
	msg := err.Error()
	msg = withTableAdvice.ReplaceAllString(msg, "with --table")
	// Wrapped library errors repeat it inside: "dead letter X: hexeract: ...".
	msg = strings.ReplaceAll(msg, ": hexeract: ", ": ")
	msg = strings.ReplaceAll(msg, "\nhexeract: ", "\n")
	for strings.HasPrefix(msg, "hexeract: ") {
		msg = strings.TrimPrefix(msg, "hexeract: ")
	}
	return "hexeract: " + msg
}
