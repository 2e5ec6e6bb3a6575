package nats

import (
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	nc "github.com/nats-io/nats.go"

	"github.com/hexeract/hexeract/router"
)

// Marshaler is the NATS marshaler Hexeract's publisher and subscriber use:
// Watermill's NATSMarshaler (the UUID in the "_watermill_message_uuid"
// header, each metadata key a header, the payload as the data), with a
// decoding that never refuses a message:
//
//   - a header with several values (a producer that added "ce_type" twice)
//     takes the first value, as nats.Header.Get does; Watermill's
//     unmarshaler refuses such a message, and its subscriber then neither
//     acks nor nacks it, so JetStream redelivers it every ack wait for ever;
//   - a header without any value is the empty string;
//   - a message without Watermill's UUID header takes its CloudEvents id
//     (ce_id) as UUID.
type Marshaler struct {
	wnats.NATSMarshaler
}

// Unmarshal decodes a NATS message into a Watermill message. It never fails.
func (m *Marshaler) Unmarshal(msg *nc.Msg) (*message.Message, error) {
	md := make(message.Metadata, len(msg.Header))
	for k, v := range msg.Header {
		switch k {
		case wnats.WatermillUUIDHdr, nc.MsgIdHdr, nc.ExpectedLastMsgIdHdr, nc.ExpectedStreamHdr, nc.ExpectedLastSubjSeqHdr, nc.ExpectedLastSeqHdr:
			continue
		}
		if len(v) > 0 {
			md[k] = v[0]
		} else {
			md[k] = ""
		}
	}
	id := msg.Header.Get(wnats.WatermillUUIDHdr)
	if id == "" {
		id = md[router.KeyID]
	}
	out := message.NewMessage(id, msg.Data)
	out.Metadata = md
	return out, nil
}

var _ wnats.MarshalerUnmarshaler = (*Marshaler)(nil)
