package kafka_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hexeract/hexeract/adapters/kafka"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestURLAcksReachProducer checks that every acks value of the URL is the
// producer's RequiredAcks, and that the brokers see it on the wire.
// acks=none used to become sarama.NoResponse, which is 0, which Config read
// as "default" and turned into WaitForAll: the parameter had no effect.
func TestURLAcksReachProducer(t *testing.T) {
	for _, tc := range []struct {
		param string
		want  sarama.RequiredAcks
	}{
		{"", sarama.WaitForAll},
		{"acks=all", sarama.WaitForAll},
		{"acks=leader", sarama.WaitForLocal},
		{"acks=none", sarama.NoResponse},
	} {
		t.Run(tc.param, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var mu sync.Mutex
			var seen []int16
			c.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				mu.Lock()
				seen = append(seen, r.(*kmsg.ProduceRequest).Acks)
				mu.Unlock()
				return nil, nil, false // let kfake handle it
			})

			cfg, err := kafka.ParseURL("kafka://" + strings.Join(c.ListenAddrs(), ",") + "/?" + tc.param)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.PublisherConfig().OverwriteSaramaConfig.Producer.RequiredAcks; got != tc.want {
				t.Fatalf("producer RequiredAcks = %d, want %d", got, tc.want)
			}
			pub, err := kafka.NewPublisher(cfg, watermill.NopLogger{})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			if err := pub.Publish("acks", message.NewMessage(watermill.NewUUID(), []byte("x"))); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, 10*time.Second, "a produce request at the broker", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(seen) > 0
			})
			mu.Lock()
			defer mu.Unlock()
			if seen[0] != int16(tc.want) {
				t.Fatalf("broker saw produce acks %d, want %d", seen[0], tc.want)
			}
		})
	}
}

// TestURLRefusesOutOfRangeNumbers checks that partition and replication
// counts that do not fit Kafka's types are refused instead of wrapping
// around (partitions=4294967297 used to become 1).
func TestURLRefusesOutOfRangeNumbers(t *testing.T) {
	for _, p := range []string{"partitions=4294967297", "partitions=-1", "replication=65536", "replication=-2"} {
		_, err := kafka.ParseURL("kafka://h:9092/?" + p)
		if err == nil {
			t.Errorf("%s: accepted", p)
			continue
		}
		if name, _, _ := strings.Cut(p, "="); !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error does not name the parameter: %v", p, err)
		}
	}
	if _, err := kafka.NewPublisher(kafka.Config{Brokers: []string{"127.0.0.1:1"}, Acks: 7}, nil); err == nil || !strings.Contains(err.Error(), "Acks") {
		t.Errorf("Config.Acks 7: got %v, want an error naming Acks", err)
	}
}

// TestURLSchemeIsCaseInsensitive: adapters.Open routes KAFKA:// to Kafka (URL
// schemes are case-insensitive), and ParseURL used to refuse it.
func TestURLSchemeIsCaseInsensitive(t *testing.T) {
	cfg, err := kafka.ParseURL("KAFKA://h:9092/?group=g")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Brokers) != 1 || cfg.Brokers[0] != "h:9092" || cfg.Group != "g" {
		t.Fatalf("config %+v", cfg)
	}
}
