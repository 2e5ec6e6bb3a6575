package router

import "github.com/ThreeDotsLabs/watermill/message"

// CorrelationIDOf returns the correlation id in md: the correlation_id
// value, or when that is empty the CloudEvents extension correlationid
// (ce_correlationid), or "".
func CorrelationIDOf(md message.Metadata) string {
	if c := md.Get(KeyCorrelationID); c != "" {
		return c
	}
	return md.Get(KeyCorrelationExt)
}
