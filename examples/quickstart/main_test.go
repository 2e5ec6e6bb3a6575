package main

import "testing"

// TestQuickstart runs the quick start as the README's first command does.
func TestQuickstart(t *testing.T) {
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
