package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"

	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
)

// TestDLQMoveSIGINT runs the hexeract binary moving 2,000 dead letters on
// Redis and sends it SIGINT (then, in a second run, SIGTERM) in the middle:
// it exits non-zero after printing how many it moved, and every message is
// either still a dead letter or on its topic, exactly once.
func TestDLQMoveSIGINT(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hexeract")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { testDLQMoveSignal(t, bin, sig) })
	}
}

func testDLQMoveSignal(t *testing.T, bin string, sig syscall.Signal) {
	suffix := testenv.Suffix()
	env := redisEnv(t, suffix)
	const n = 2000
	topic, dlqTopic := "dlqt-"+suffix, "dlqt-"+suffix+".dlq"
	opts, err := goredis.ParseURL(env.url)
	if err != nil {
		t.Fatal(err)
	}
	rc := goredis.NewClient(opts)
	defer func() { _ = rc.Close() }()
	ctx := context.Background()
	// The destination has a subscriber (a consumer group).
	if err := rc.XGroupCreateMkStream(ctx, topic, "grp-"+suffix, "0").Err(); err != nil {
		t.Fatal(err)
	}
	tr, err := adapters.Open(ctx, env.url)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]*message.Message, 0, n)
	for i := range n {
		m := message.NewMessage(fmt.Sprintf("m-%04d", i), []byte(`{}`))
		m.Metadata[router.KeyFaultTopic] = topic
		m.Metadata[router.KeyFaultError] = "boom"
		batch = append(batch, m)
	}
	if err := tr.Publisher.Publish(dlqTopic, batch...); err != nil {
		t.Fatal(err)
	}
	_ = tr.Close()

	cmd := exec.Command(bin, "dlq", "move", dlqTopic, "--transport", env.url, "-q")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 60*time.Second, "the move to be under way", func() bool { return rc.XLen(ctx, topic).Val() >= 100 })
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("exit: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	m := regexp.MustCompile(`(\d+) dead letter\(s\) moved from`).FindStringSubmatch(stdout.String())
	if m == nil || !bytes.Contains(stderr.Bytes(), []byte("interrupted after")) {
		t.Fatalf("no summary:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	moved, _ := strconv.Atoi(m[1])
	if moved == 0 || moved == n {
		t.Fatalf("SIGINT did not land mid-move: %d of %d moved", moved, n)
	}
	seen := map[string]int{}
	for _, stream := range []string{topic, dlqTopic} {
		es, err := rc.XRange(ctx, stream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			id, _ := e.Values["_watermill_message_uuid"].(string)
			seen[id]++
		}
		if stream == topic && len(es) != moved {
			t.Errorf("%d message(s) on %s, the command said %d", len(es), topic, moved)
		}
	}
	for i := range n {
		if id := fmt.Sprintf("m-%04d", i); seen[id] != 1 {
			t.Errorf("%s found %d times", id, seen[id])
		}
	}
	t.Logf("interrupted after %d of %d; stderr: %s", moved, n, stderr.String())
}
