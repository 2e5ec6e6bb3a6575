package hexeract

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// TopicChecker is implemented by a publisher or subscriber whose transport
// restricts topic names (a topic that becomes a stream, queue or table
// name). [App.Run] calls CheckTopic for every topic the App consumes and
// dead-letters to, and refuses to start when one fails: the error should
// name the topic and what to change.
type TopicChecker interface {
	CheckTopic(topic string) error
}

// natsPkg is the package of Watermill's NATS transport, whose AutoProvision
// creates a JetStream stream named after each topic.
const natsPkg = "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"

// topicCheckers returns the topic rules of the App's transports: those they
// declare (TopicChecker) and the one of watermill-nats with AutoProvision.
func (a *App) topicCheckers() []TopicChecker {
	var out []TopicChecker
	for _, t := range []any{a.subscriber, a.rawPublisher} {
		if t == nil {
			continue
		}
		if c, ok := t.(TopicChecker); ok {
			out = append(out, c)
			continue
		}
		if natsAutoProvision(t) {
			out = append(out, natsStreamNames{})
		}
	}
	return out
}

// natsAutoProvision reports whether t is a watermill-nats Publisher or
// Subscriber with JetStream and AutoProvision on. Their configuration is not
// exported, so it is read by reflection; a layout it does not know reports
// false (and the transport's own error surfaces at Run).
func natsAutoProvision(t any) (on bool) {
	v := reflect.ValueOf(t)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	typ := v.Elem().Type()
	if typ.PkgPath() != natsPkg || (typ.Name() != "Subscriber" && typ.Name() != "Publisher") {
		return false
	}
	defer func() {
		if recover() != nil {
			on = false
		}
	}()
	js := v.Elem().FieldByName("config").FieldByName("JetStream")
	if !js.IsValid() {
		return false
	}
	disabled, auto := js.FieldByName("Disabled"), js.FieldByName("AutoProvision")
	if !disabled.IsValid() || !auto.IsValid() || disabled.Kind() != reflect.Bool || auto.Kind() != reflect.Bool {
		return false
	}
	return !disabled.Bool() && auto.Bool()
}

// natsStreamNames is the topic rule of watermill-nats with AutoProvision:
// the topic is the JetStream stream name.
type natsStreamNames struct{}

func (natsStreamNames) CheckTopic(topic string) error {
	if i := strings.IndexAny(topic, ". \t\r\n*>/\\"); i >= 0 {
		return fmt.Errorf("watermill-nats with AutoProvision names a JetStream stream after each topic, and stream names cannot contain %q; "+
			"pass hexeract.WithTopicNaming(hexeract.UnderscoreTopics{}) to hexeract.New (and build the outbox and scheduler with app.Topics()), "+
			"or turn AutoProvision off and create the streams yourself", topic[i])
	}
	return nil
}

// CheckTopic reports whether the App's transports accept topic as a
// name (see [TopicChecker]); request/reply checks its reply topic with it.
func (a *App) CheckTopic(topic string) error {
	for _, c := range a.topicCheckers() {
		if err := c.CheckTopic(topic); err != nil {
			return fmt.Errorf("hexeract: topic %q: %w", topic, err)
		}
	}
	return nil
}

// checkTopics checks every topic the App consumes, and each one's
// dead-letter topic, against its transports' rules. The caller holds a.mu.
func (a *App) checkTopics() error {
	checkers := a.topicCheckers()
	if len(checkers) == 0 {
		return nil
	}
	topics := make([]string, 0, len(a.topicUsers))
	for t := range a.topicUsers {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	var errs []error
	for _, t := range topics {
		handler := a.topicUsers[t]
		names := []string{t}
		if a.dlqTopic != nil {
			names = append(names, a.dlqTopic(t))
		}
		for i, name := range names {
			for _, c := range checkers {
				if err := c.CheckTopic(name); err != nil {
					what := "topic"
					if i > 0 {
						what = fmt.Sprintf("dead-letter topic of %q", t)
					}
					errs = append(errs, fmt.Errorf("hexeract: %s %q (handler %q): %w", what, name, handler, err))
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}
