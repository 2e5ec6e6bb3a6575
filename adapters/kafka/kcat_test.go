package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/hexeract/hexeract/adapters/kafka"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
)

type shipment struct {
	OrderID string `json:"order_id"`
}

func (shipment) MessageType() string   { return "orders.shipped" }
func (s shipment) OrderingKey() string { return s.OrderID }

// kcatRecord is one record as `kcat -C -J` prints it.
type kcatRecord struct {
	Topic   string   `json:"topic"`
	Key     *string  `json:"key"`
	Payload *string  `json:"payload"`
	Headers []string `json:"headers"` // name, value, name, value, ...
}

func (r kcatRecord) header(name string) (string, bool) {
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if r.Headers[i] == name {
			return r.Headers[i+1], true
		}
	}
	return "", false
}

// kcat reads every record of topic with kcat (librdkafka, an independent
// Kafka client), installing the Debian package kcat first when it is missing
// (see testenv.Tool).
func kcat(t *testing.T, brokers []string, topic string) []kcatRecord {
	t.Helper()
	path := testenv.Tool(t, "kcat", "kcat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-C", "-b", strings.Join(brokers, ","), "-t", topic, "-o", "beginning", "-e", "-J", "-q")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}
	var recs []kcatRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("kcat printed %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestKcatReadsHexeractRecords: kcat, an independent Kafka client, reads
// what Hexeract's Kafka publisher writes: in binary mode the CloudEvents
// Kafka binding's ce_ headers, the content-type header, the ordering key as
// record key and the JSON data as value; in structured mode (through
// router.StructuredPublisher) the JSON event as value with the
// application/cloudevents+json content type, the same record key, and the
// conversation as a plain header.
func TestKcatReadsHexeractRecords(t *testing.T) {
	brokers := testenv.Kafka(t)
	pub, err := kafka.NewPublisher(kafka.Config{Brokers: brokers}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx := router.WithCorrelationID(context.Background(), "conv-kcat")
	msg, err := router.NewMessage(ctx, shipment{OrderID: "o-42"}, router.EncodeOptions{Source: "/warehouse"})
	if err != nil {
		t.Fatal(err)
	}
	binTopic, structTopic := "kcat-bin."+testenv.Suffix(), "kcat-struct."+testenv.Suffix()
	if err := pub.Publish(binTopic, msg); err != nil {
		t.Fatal(err)
	}
	if err := router.StructuredPublisher(pub, nil).Publish(structTopic, msg); err != nil {
		t.Fatal(err)
	}

	recs := kcat(t, brokers, binTopic)
	if len(recs) != 1 {
		t.Fatalf("kcat read %d records from %s, want 1: %+v", len(recs), binTopic, recs)
	}
	r := recs[0]
	for name, want := range map[string]string{
		"ce_id": msg.UUID, "ce_type": "orders.shipped", "ce_source": "/warehouse", "ce_specversion": "1.0",
		"ce_time": msg.Metadata.Get(router.KeyTime), "ce_partitionkey": "o-42", "content-type": "application/json",
		"correlation_id": "conv-kcat", "_watermill_message_uuid": msg.UUID,
	} {
		if got, ok := r.header(name); !ok || got != want {
			t.Errorf("binary record header %s = %q (present %v), want %q; headers %v", name, got, ok, want, r.Headers)
		}
	}
	if r.Key == nil || *r.Key != "o-42" || r.Payload == nil || *r.Payload != `{"order_id":"o-42"}` {
		t.Errorf("binary record key %v payload %v", deref(r.Key), deref(r.Payload))
	}

	recs = kcat(t, brokers, structTopic)
	if len(recs) != 1 {
		t.Fatalf("kcat read %d records from %s, want 1: %+v", len(recs), structTopic, recs)
	}
	r = recs[0]
	if ct, _ := r.header("content-type"); ct != router.ContentTypeCloudEvents {
		t.Errorf("structured record content-type %q", ct)
	}
	for _, name := range []string{"ce_id", "ce_type", "ce_source"} {
		if v, ok := r.header(name); ok {
			t.Errorf("structured record has the attribute header %s=%q; the attributes belong in the value", name, v)
		}
	}
	if c, _ := r.header("correlation_id"); c != "conv-kcat" {
		t.Errorf("structured record correlation_id header %q", c)
	}
	if r.Key == nil || *r.Key != "o-42" || r.Payload == nil {
		t.Fatalf("structured record key %v payload %v", deref(r.Key), deref(r.Payload))
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(*r.Payload), &ev); err != nil {
		t.Fatalf("structured value %q: %v", *r.Payload, err)
	}
	data, _ := ev["data"].(map[string]any)
	if ev["specversion"] != "1.0" || ev["id"] != msg.UUID || ev["type"] != "orders.shipped" || ev["source"] != "/warehouse" ||
		ev["partitionkey"] != "o-42" || ev["correlationid"] != "conv-kcat" || ev["datacontenttype"] != "application/json" ||
		data["order_id"] != "o-42" {
		t.Errorf("structured event %v", ev)
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
