package sql

import (
	"fmt"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/internal/wire"
	"github.com/hexeract/hexeract/router"
)

// schema is Watermill's PostgreSQL schema with a decoding of rows that
// never fails on a row's metadata. Watermill's decodes the metadata column
// as a JSON object of strings and fails the whole batch query otherwise;
// its subscriber then retries the batch every RetryInterval for ever, so
// the group never passes that row. This one:
//
//   - carries values of the metadata object that are not strings in their
//     text form (numbers and booleans as text, null as the empty string,
//     objects and arrays as JSON; see docs/transports.md);
//   - hands a row whose metadata is not a JSON object (a number, a string,
//     an array) on as an undecodable message (router.NewUndecodable): the
//     payload column as payload and router.KeyTransportError naming the
//     cause, so the dead-letter middleware moves it aside and the group
//     goes on with the rows behind it.
type schema struct {
	wsql.DefaultPostgreSQLSchema
}

// UnmarshalMessage reads one row of the batch query.
func (s schema) UnmarshalMessage(params wsql.UnmarshalMessageParams) (wsql.Row, error) {
	var r wsql.Row
	var txID wsql.XID8
	if err := params.Row.Scan(&r.Offset, &txID, &r.UUID, &r.Payload, &r.Metadata); err != nil {
		return wsql.Row{}, fmt.Errorf("could not scan message row: %w", err)
	}
	md, err := decodeMetadata(r.Metadata)
	if err != nil {
		r.Msg = router.NewUndecodable(string(r.UUID), r.Payload, nil, err.Error())
	} else {
		uuid := string(r.UUID)
		if uuid == "" {
			uuid = md[router.KeyID]
		}
		r.Msg = message.NewMessage(uuid, r.Payload)
		r.Msg.Metadata = md
	}
	r.ExtraData = map[string]any{"transaction_id": txID}
	return r, nil
}

// decodeMetadata decodes the metadata column: a JSON object whose values
// become text.
func decodeMetadata(raw []byte) (message.Metadata, error) {
	md, err := wire.JSONObject(raw)
	if err != nil {
		return nil, fmt.Errorf("sql: the row's metadata is %w", err)
	}
	return md, nil
}
