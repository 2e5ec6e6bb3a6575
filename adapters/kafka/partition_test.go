package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hexeract/hexeract/adapters/kafka"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
)

// TestPartitionKey checks that messages with the same ordering key
// (ce_partitionkey) land on one partition in publish order, and that
// messages without a key are spread over partitions.
func TestPartitionKey(t *testing.T) {
	brokers := testenv.Kafka(t, kfake.DefaultNumPartitions(8))
	pub, sub, err := kafka.New(kafka.Config{Brokers: brokers, Group: "pk", Tune: fastGroups}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()
	topic := "pk." + testenv.Suffix()
	const perKey, keys, unkeyed = 20, 4, 40
	for i := range perKey {
		for k := range keys {
			m := message.NewMessage(fmt.Sprintf("k%d-%03d", k, i), []byte("{}"))
			m.Metadata.Set(router.KeyPartitionKey, fmt.Sprintf("order-%d", k))
			if err := pub.Publish(topic, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range unkeyed {
		if err := pub.Publish(topic, message.NewMessage(fmt.Sprintf("u-%03d", i), []byte("{}"))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	partitionOfKey := map[string]int32{}
	lastOfKey := map[string]string{}
	unkeyedPartitions := map[int32]bool{}
	for n := 0; n < perKey*keys+unkeyed; n++ {
		var m *message.Message
		select {
		case m = <-msgs:
		case <-ctx.Done():
			t.Fatalf("received %d of %d messages", n, perKey*keys+unkeyed)
		}
		p, ok := wkafka.MessagePartitionFromCtx(m.Context())
		if !ok {
			t.Fatal("no partition in the message context")
		}
		key := m.Metadata.Get(router.KeyPartitionKey)
		if key == "" {
			unkeyedPartitions[p] = true
		} else {
			if prev, seen := partitionOfKey[key]; seen && prev != p {
				t.Errorf("key %s on partitions %d and %d", key, prev, p)
			}
			partitionOfKey[key] = p
			if m.UUID <= lastOfKey[key] {
				t.Errorf("key %s: %s after %s", key, m.UUID, lastOfKey[key])
			}
			lastOfKey[key] = m.UUID
		}
		m.Ack()
	}
	if len(unkeyedPartitions) < 2 {
		t.Errorf("messages without a key all went to %d partition(s)", len(unkeyedPartitions))
	}
	t.Logf("keys on partitions %v; unkeyed messages on %d partitions", partitionOfKey, len(unkeyedPartitions))
}
