package sqs

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// NewClient returns the SQS client c describes: c.Client when set, else one
// built from the AWS default chain with c.Region, c.Credentials and
// c.Endpoint. Tools that inspect queues (adapters/dlq) use it to talk to the
// same queues as the Publisher and Subscriber.
func (c Config) NewClient(ctx context.Context) (*sqs.Client, error) { return c.client(ctx) }

// UnmarshalMessage converts a received SQS message (received with
// MessageAttributeNames "All") into the Watermill message the Subscriber
// would deliver: same UUID, payload and metadata.
func UnmarshalMessage(m types.Message) *message.Message { return fromSQS(m) }
