package middleware_test

import (
	"strings"
	"testing"

	"github.com/hexeract/hexeract/middleware"
)

// TestConfigValidate: RetryPolicy and DefaultConfig report a bad setting
// before any middleware is built, with the field named; zero values are
// valid; Default refuses what Validate refuses.
func TestConfigValidate(t *testing.T) {
	if err := (middleware.RetryPolicy{}).Validate(); err != nil {
		t.Fatalf("zero RetryPolicy: %v", err)
	}
	if err := (middleware.DefaultConfig{}).Validate(); err != nil {
		t.Fatalf("zero DefaultConfig: %v", err)
	}
	bad := middleware.RetryPolicy{MaxAttempts: -1}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "MaxAttempts") {
		t.Fatalf("RetryPolicy{MaxAttempts: -1}.Validate() = %v", err)
	}
	cfg := middleware.DefaultConfig{Retry: middleware.RetryPolicy{Multiplier: 0.5}}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "Multiplier") {
		t.Fatalf("DefaultConfig with Multiplier 0.5: Validate() = %v", err)
	}
	if _, derr := middleware.Default(cfg); derr == nil || derr.Error() != err.Error() {
		t.Fatalf("Default = %v, want the Validate error %v", derr, err)
	}
}
