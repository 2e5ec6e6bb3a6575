package router

import "strings"

// TopicNaming names every topic an App uses, in one place: the topic of a
// message type, the dead-letter topic of a topic and the reply topic of a
// request/reply client. Give it once to the App (hexeract.WithTopicNaming);
// the App's handlers, its publisher, its dead-letter middleware and
// request/reply take it from there, and the outbox and the scheduler take it
// from the App (outbox.WithTopicNaming(app.Topics())).
//
// [DefaultTopics] keeps the wire name as the topic ("billing.invoiced",
// dead letters on "billing.invoiced.dlq"); [UnderscoreTopics] gives names
// without dots ("billing_invoiced", "billing_invoiced_dlq"), for transports
// that use the topic as a name where dots are not allowed: Watermill's NATS
// transport with AutoProvision (JetStream stream names), for example.
type TopicNaming interface {
	// Topic returns the topic messages of the wire name are published on
	// and consumed from. It must not return "".
	Topic(wireName string) string
	// DeadLetterTopic returns the dead-letter topic of topic.
	DeadLetterTopic(topic string) string
	// ReplyTopic returns the topic a request/reply client receives its
	// replies on, from the client's random instance id (letters and digits).
	ReplyTopic(instance string) string
}

// DefaultTopics is the default [TopicNaming]: the topic is the wire name,
// the dead-letter topic is topic + ".dlq", the reply topic is
// "hexeract.replies." + instance.
type DefaultTopics struct{}

// Topic returns wireName.
func (DefaultTopics) Topic(wireName string) string { return wireName }

// DeadLetterTopic returns topic + ".dlq".
func (DefaultTopics) DeadLetterTopic(topic string) string { return topic + ".dlq" }

// DefaultReplyTopicPrefix starts the reply topic of [DefaultTopics]:
// "hexeract.replies.<instance id>".
const DefaultReplyTopicPrefix = "hexeract.replies."

// ReplyTopic returns [DefaultReplyTopicPrefix] + instance.
func (DefaultTopics) ReplyTopic(instance string) string { return DefaultReplyTopicPrefix + instance }

// UnderscoreTopics is a [TopicNaming] without dots: the topic is the wire
// name with every '.' replaced by '_' ("billing.invoiced" becomes
// "billing_invoiced"), the dead-letter topic is topic + "_dlq" and the reply
// topic "hexeract_replies_" + instance. Use it with transports that turn
// topics into names where dots are not allowed (watermill-nats with
// AutoProvision names a JetStream stream after each topic).
type UnderscoreTopics struct{}

// Topic returns wireName with '.' replaced by '_'.
func (UnderscoreTopics) Topic(wireName string) string { return strings.ReplaceAll(wireName, ".", "_") }

// DeadLetterTopic returns topic + "_dlq" (with '.' replaced by '_').
func (UnderscoreTopics) DeadLetterTopic(topic string) string {
	return strings.ReplaceAll(topic, ".", "_") + "_dlq"
}

// ReplyTopic returns "hexeract_replies_" + instance.
func (UnderscoreTopics) ReplyTopic(instance string) string { return "hexeract_replies_" + instance }

// FuncTopics is a [TopicNaming] made of functions; a nil field falls back
// to [DefaultTopics]. hexeract.WithTopicFunc(f) is FuncTopics{TopicOf: f}.
type FuncTopics struct {
	// TopicOf maps a wire name to its topic.
	TopicOf TopicFunc
	// DeadLetterOf maps a topic to its dead-letter topic.
	DeadLetterOf func(topic string) string
	// ReplyOf names a request/reply client's reply topic.
	ReplyOf func(instance string) string
}

// Topic calls TopicOf, or returns wireName.
func (f FuncTopics) Topic(wireName string) string {
	if f.TopicOf != nil {
		return f.TopicOf(wireName)
	}
	return wireName
}

// DeadLetterTopic calls DeadLetterOf, or returns topic + ".dlq".
func (f FuncTopics) DeadLetterTopic(topic string) string {
	if f.DeadLetterOf != nil {
		return f.DeadLetterOf(topic)
	}
	return DefaultTopics{}.DeadLetterTopic(topic)
}

// ReplyTopic calls ReplyOf, or returns "hexeract.replies." + instance.
func (f FuncTopics) ReplyTopic(instance string) string {
	if f.ReplyOf != nil {
		return f.ReplyOf(instance)
	}
	return DefaultTopics{}.ReplyTopic(instance)
}
