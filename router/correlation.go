package router

import "github.com/ThreeDotsLabs/watermill/message"

// KeyCorrelationExt is the metadata key of the CloudEvents extension
// "correlationid". CloudEvents extension names are lowercase letters and
// digits only, so an event written with a CloudEvents SDK cannot carry an
// attribute named correlation_id; it carries the extension correlationid,
// which the Kafka binding writes as the header ce_correlationid (and the
// AMQP binding as cloudEvents_correlationid, which adapters/amqp decodes to
// ce_correlationid). Hexeract reads it when correlation_id is missing, and
// writes correlation_id.
const KeyCorrelationExt = "ce_correlationid"

// CorrelationIDOf returns the correlation id in md: the correlation_id
// value, or when that is empty the CloudEvents extension correlationid
// (ce_correlationid), or "".
func CorrelationIDOf(md message.Metadata) string {
	if c := md.Get(KeyCorrelationID); c != "" {
		return c
	}
	return md.Get(KeyCorrelationExt)
}
