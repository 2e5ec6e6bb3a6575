package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	hamqp "github.com/hexeract/hexeract/adapters/amqp"
)

// amqpDriver reads a group's queue with basic.get without ack and gives
// every message back (basic.nack, requeue) when done; the management API
// lists queues, exchanges and bindings. A move publishes with mandatory and
// publisher confirms to the destination's exchange and acks the dead letter
// only after the broker confirmed a routed publish.
type amqpDriver struct {
	cfg   hamqp.Config
	conn  *amqp091.Connection
	mgmt  string // base URL of the management API, ending in /api
	vhost string
	http  *http.Client
}

func openAMQP(_ context.Context, rawURL string, o options) (driver, error) {
	cfg, err := hamqp.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if cfg.Group == "" {
		cfg.Group = hamqp.DefaultGroup
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("amqp: %w", err)
	}
	conn, err := amqp091.DialConfig(cfg.URL, amqp091.Config{
		TLSClientConfig: cfg.TLS,
		Locale:          "en_US",
		Properties:      amqp091.Table{"connection_name": "hexeract dlq"},
	})
	if err != nil {
		return nil, fmt.Errorf("amqp: cannot connect: %w", err)
	}
	d := &amqpDriver{cfg: cfg, conn: conn, mgmt: o.managementURL, http: &http.Client{Timeout: 10 * time.Second}}
	d.vhost = strings.TrimPrefix(u.Path, "/")
	if d.vhost == "" {
		d.vhost = "/"
	}
	if d.mgmt == "" {
		m := url.URL{Scheme: "http", Host: u.Hostname() + ":15672", Path: "/api", User: u.User}
		if u.Scheme == "amqps" {
			m.Scheme, m.Host = "https", u.Hostname()+":15671"
		}
		if m.User == nil {
			m.User = url.UserPassword("guest", "guest")
		}
		d.mgmt = m.String()
	}
	return d, nil
}

func (d *amqpDriver) close() error { return d.conn.Close() }

func (d *amqpDriver) queue(topic, group string) string {
	if group == "" {
		group = d.cfg.Group
	}
	return hamqp.QueueName(topic, group)
}

// api GETs a management API path into v.
func (d *amqpDriver) api(ctx context.Context, v any, path ...string) error {
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(d.mgmt, "/"))
	for _, p := range path {
		b.WriteString("/" + url.PathEscape(p))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.String(), nil)
	if err != nil {
		return err
	}
	res, err := d.http.Do(req)
	if err != nil {
		// The URL carries the management password: report the host only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("RabbitMQ management API (%s): %w", req.URL.Host, err)
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("RabbitMQ management API (%s): %s", req.URL.Host, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

// topics returns the exchanges (one per topic) of the vhost.
func (d *amqpDriver) topics(ctx context.Context) ([]string, error) {
	var xs []struct{ Name string }
	if err := d.api(ctx, &xs, "exchanges", d.vhost); err != nil {
		return nil, err
	}
	var out []string
	for _, x := range xs {
		if x.Name != "" && !strings.HasPrefix(x.Name, "amq.") {
			out = append(out, x.Name)
		}
	}
	return out, nil
}

// boundQueues returns the queues bound to topic's exchange.
func (d *amqpDriver) boundQueues(ctx context.Context, topic string) ([]string, error) {
	var bs []struct {
		Destination     string
		DestinationType string `json:"destination_type"`
	}
	if err := d.api(ctx, &bs, "exchanges", d.vhost, topic, "bindings", "source"); err != nil {
		return nil, err
	}
	var out []string
	for _, b := range bs {
		if b.DestinationType == "queue" {
			out = append(out, b.Destination)
		}
	}
	return out, nil
}

// inspect passive-declares a queue (or exchange) on a channel of its own: a
// missing one closes the channel with 404.
func (d *amqpDriver) inspect(name string, exchange bool) (amqp091.Queue, bool, error) {
	ch, err := d.conn.Channel()
	if err != nil {
		return amqp091.Queue{}, false, err
	}
	defer func() { _ = ch.Close() }()
	var q amqp091.Queue
	if exchange {
		err = ch.ExchangeDeclarePassive(name, "fanout", true, false, false, false, nil)
	} else {
		q, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
	}
	var ae *amqp091.Error
	if errors.As(err, &ae) && ae.Code == amqp091.NotFound {
		return q, false, nil
	}
	return q, err == nil, err
}

func (d *amqpDriver) check(ctx context.Context, topic, group string) error {
	q := d.queue(topic, group)
	if _, ok, err := d.inspect(q, false); err != nil || ok {
		return err
	}
	_, xok, err := d.inspect(topic, true)
	if err != nil {
		return err
	}
	if !xok {
		e := &UnknownError{Kind: "topic", Name: topic}
		all, err := d.topics(ctx)
		if err != nil {
			return fmt.Errorf("%w (cannot list the existing ones: %v)", e, err)
		}
		e.Existing = dlqTopics(all)
		return e
	}
	if group == "" {
		group = d.cfg.Group
	}
	e := &UnknownError{Kind: "group", Name: group, Topic: topic}
	qs, err := d.boundQueues(ctx, topic)
	if err != nil {
		return fmt.Errorf("%w (cannot list the existing ones: %v)", e, err)
	}
	for _, q := range qs {
		e.Existing = append(e.Existing, strings.TrimPrefix(q, topic+"_"))
	}
	slices.Sort(e.Existing)
	return e
}

func (d *amqpDriver) list(ctx context.Context, topic, group string, limit int, fn func(*message.Message) error) error {
	q := d.queue(topic, group)
	info, _, err := d.inspect(q, false)
	if err != nil {
		return err
	}
	ch, err := d.conn.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	var last uint64
	// Give back every message read, whatever happens, before returning.
	defer func() {
		if last > 0 {
			_ = ch.Nack(last, true, true)
		}
	}()
	var msgs []*message.Message
	for n := 0; n < info.Messages && (limit == 0 || n < limit); n++ {
		dl, ok, err := ch.Get(q, false)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		last = dl.DeliveryTag
		m, err := (hamqp.Marshaler{}).Unmarshal(dl)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if last > 0 {
		if err := ch.Nack(last, true, true); err != nil {
			return err
		}
		last = 0
		if err := ch.Close(); err != nil {
			return err
		}
		d.awaitRequeue(ctx, q, info.Messages)
	}
	for _, m := range msgs {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// awaitRequeue waits (up to 5 s) until queue q holds ready again: the
// broker requeues nacked messages asynchronously, and a read returns only
// once the queue is back as it found it.
func (d *amqpDriver) awaitRequeue(ctx context.Context, q string, ready int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		info, ok, err := d.inspect(q, false)
		if err != nil || !ok || info.Messages >= ready {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *amqpDriver) count(_ context.Context, topic, group string) (int, error) {
	info, _, err := d.inspect(d.queue(topic, group), false)
	return info.Messages, err
}

func (d *amqpDriver) subscribed(ctx context.Context, topic string) (bool, error) {
	if _, ok, err := d.inspect(topic, true); err != nil || !ok {
		return false, err
	}
	qs, err := d.boundQueues(ctx, topic)
	if err != nil {
		// Without the management API the mandatory publish of the move
		// refuses an unroutable message (nothing is moved then).
		return true, nil
	}
	return len(qs) > 0, nil
}

func (d *amqpDriver) move(ctx context.Context, topic, group string, limit int, next func(*message.Message) (string, *message.Message, error), done func(*message.Message, string)) error {
	q := d.queue(topic, group)
	info, _, err := d.inspect(q, false)
	if err != nil {
		return err
	}
	get, err := d.conn.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = get.Close() }()
	pub, err := d.conn.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = pub.Close() }()
	if err := pub.Confirm(false); err != nil {
		return err
	}
	returns := pub.NotifyReturn(make(chan amqp091.Return, 1))
	seen := map[string]bool{}
	moved, gaveBack := 0, false
	// A message given back is requeued by the broker asynchronously: return
	// once the queue holds it again.
	defer func() {
		if gaveBack {
			_ = get.Close()
			d.awaitRequeue(context.WithoutCancel(ctx), q, info.Messages-moved)
		}
	}()
	// One pass: the messages ready when the move started.
	for n := 0; n < info.Messages && (limit == 0 || n < limit); n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		dl, ok, err := get.Get(q, false)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		giveBack := func(err error) error {
			gaveBack = true
			return errors.Join(err, dl.Nack(false, true))
		}
		dead, err := (hamqp.Marshaler{}).Unmarshal(dl)
		if err != nil {
			return giveBack(err)
		}
		if seen[dead.UUID] {
			return giveBack(nil) // came round again: dead-lettered anew during the move
		}
		seen[dead.UUID] = true
		to, out, err := next(dead)
		if err != nil {
			return giveBack(err)
		}
		p, err := (hamqp.Marshaler{}).Marshal(out)
		if err != nil {
			return giveBack(err)
		}
		p.DeliveryMode = amqp091.Persistent
		c := context.WithoutCancel(ctx)
		conf, err := pub.PublishWithDeferredConfirmWithContext(c, to, "", true, false, p)
		if err != nil {
			return giveBack(fmt.Errorf("dlq: publish %s to %q (left in %q): %w", dead.UUID, to, topic, err))
		}
		acked, err := conf.WaitContext(c)
		if err != nil || !acked {
			return giveBack(fmt.Errorf("dlq: RabbitMQ did not confirm %s on %q (left in %q): %v", dead.UUID, to, topic, err))
		}
		select {
		case r := <-returns:
			return giveBack(fmt.Errorf("%w: RabbitMQ returned %s: %q routes to no queue (%s); left in %q",
				ErrNoSubscriber, dead.UUID, to, r.ReplyText, topic))
		default:
		}
		if err := dl.Ack(false); err != nil {
			return fmt.Errorf("dlq: %s was published to %q but could not be acknowledged on %q (it may be moved twice): %w", dead.UUID, to, q, err)
		}
		moved++
		done(dead, to)
	}
	return nil
}
