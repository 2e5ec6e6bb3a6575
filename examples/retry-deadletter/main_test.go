package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// TestRun runs the example in memory and checks what it prints.
func TestRun(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	runErr := run("")
	os.Stdout = stdout
	_ = w.Close()
	var out bytes.Buffer
	_, _ = io.Copy(&out, r)
	if runErr != nil {
		t.Fatalf("run: %v\n%s", runErr, out.String())
	}
	for _, want := range []string{
		"charged p-1 (10) on attempt 1",
		"charged p-2 (20) on attempt 3",
		"dead letter p-3: *errors.errorString error after 1 attempt(s): card declined",
		"dead letter p-4: panic error after 3 attempt(s): panic: assignment to entry in nil map",
		"stack recorded",
		"dead letter p-5: *router.DecodeError error after 1 attempt(s)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
