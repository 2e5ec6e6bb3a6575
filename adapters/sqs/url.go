package sqs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/aws/aws-sdk-go-v2/aws"
)

// Scheme is the URL scheme [ParseURL] accepts.
const Scheme = "sqs"

// ParseURL builds a Config from a URL of the form
//
//	sqs://[KEY_ID:SECRET@]REGION/?endpoint=URL&wait=20s&visibility=30s&max_messages=10&pollers=1&create_queues=true
//
// REGION may be empty (sqs:///) to take the region of the default chain. The
// user info, when present, gives static credentials (a session token may be
// passed as the session_token parameter); otherwise the default credential
// chain is used. All query parameters are optional:
//
//	endpoint       SQS endpoint override, e.g. http://127.0.0.1:4566 (Config.Endpoint)
//	wait           long-polling wait, 0s to 20s (Config.WaitTime)
//	visibility     visibility timeout, 1s to 12h (Config.VisibilityTimeout)
//	max_messages   messages per ReceiveMessage, 1 to 10 (Config.MaxMessages)
//	pollers        receive loops per subscription (Config.Pollers)
//	create_queues  false to disable CreateQueue (Config.DisableQueueCreation)
//	session_token  session token for the static credentials
//
// Errors never contain the credentials.
func ParseURL(rawURL string) (Config, error) {
	var cfg Config
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the whole URL, credentials included
		}
		return cfg, fmt.Errorf("sqs: malformed URL (%v); expected sqs://[KEY_ID:SECRET@]REGION/?endpoint=URL", redactErr(err, rawURL))
	}
	if u.Scheme != Scheme {
		return cfg, fmt.Errorf("sqs: URL scheme %q is not %q; expected sqs://[KEY_ID:SECRET@]REGION/?endpoint=URL", u.Scheme, Scheme)
	}
	if u.Opaque != "" {
		return cfg, errors.New("sqs: malformed URL: expected sqs://[KEY_ID:SECRET@]REGION/?endpoint=URL")
	}
	if u.Path != "" && u.Path != "/" {
		return cfg, errors.New("sqs: URL must have no path: the queue comes from the topic; expected sqs://REGION/?endpoint=URL")
	}
	cfg.Region = u.Hostname()
	if u.Port() != "" {
		return cfg, errors.New("sqs: URL host is the AWS region and takes no port; put the emulator address in ?endpoint=")
	}
	q := u.Query()
	if u.User != nil {
		secret, ok := u.User.Password()
		if u.User.Username() == "" || !ok || secret == "" {
			return cfg, errors.New("sqs: URL user info must be KEY_ID:SECRET (both non-empty), or be left out to use the default credential chain")
		}
		cfg.Credentials = StaticCredentials(u.User.Username(), secret, q.Get("session_token"))
	} else if q.Has("session_token") {
		return cfg, errors.New("sqs: session_token needs KEY_ID:SECRET user info in the URL")
	}

	var errs []error
	for key, values := range q {
		if len(values) != 1 {
			errs = append(errs, fmt.Errorf("parameter %q given %d times", key, len(values)))
			continue
		}
		v := values[0]
		switch key {
		case "endpoint":
			cfg.Endpoint = v
		case "wait":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("wait=%q: not a duration from 0s to 20s, such as 20s", v))
			} else if d == 0 {
				cfg.WaitTime = NoWait
			} else {
				cfg.WaitTime = d
			}
		case "visibility":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				// 0 would read as "default" (30s) in Config: refuse it here.
				errs = append(errs, fmt.Errorf("visibility=%q: not a duration from 1s to 12h, such as 30s", v))
			}
			cfg.VisibilityTimeout = d
		case "max_messages":
			n, err := strconv.Atoi(v)
			if err != nil || n == 0 {
				errs = append(errs, fmt.Errorf("max_messages=%q: not a number from 1 to 10", v))
			}
			cfg.MaxMessages = n
		case "pollers":
			n, err := strconv.Atoi(v)
			if err != nil || n == 0 {
				errs = append(errs, fmt.Errorf("pollers=%q: not a positive number", v))
			}
			cfg.Pollers = n
		case "create_queues":
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("create_queues=%q: not true or false", v))
			}
			cfg.DisableQueueCreation = !b
		case "session_token":
			// handled with the user info
		default:
			errs = append(errs, fmt.Errorf("unknown parameter %q (known: endpoint, wait, visibility, max_messages, pollers, create_queues, session_token)", key))
		}
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("sqs: bad URL parameters: %w", errors.Join(errs...))
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// redactErr removes the user info of rawURL from err's text.
func redactErr(err error, rawURL string) string {
	s := err.Error()
	if i := strings.Index(rawURL, "://"); i >= 0 {
		rest := rawURL[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if userinfo := rest[:at]; userinfo != "" {
				s = strings.ReplaceAll(s, userinfo, "REDACTED")
			}
		}
	}
	return s
}

// Open builds a Publisher and a Subscriber from a URL (see [ParseURL]) that
// share one SQS client. logger may be nil. Close both when done.
func Open(ctx context.Context, rawURL string, logger watermill.LoggerAdapter) (*Publisher, *Subscriber, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	client, err := cfg.client(ctx)
	if err != nil {
		return nil, nil, err
	}
	cfg.Client = client
	pub, err := NewPublisher(ctx, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	sub, err := NewSubscriber(ctx, cfg, logger)
	if err != nil {
		_ = pub.Close()
		return nil, nil, err
	}
	return pub, sub, nil
}

// StaticCredentials returns a credentials provider for fixed keys. Unlike the
// SDK's own static provider, it prints as "sqs.StaticCredentials(REDACTED)"
// with fmt's %v and %#v, so a logged Config never shows the secret.
func StaticCredentials(keyID, secret, sessionToken string) aws.CredentialsProvider {
	return staticCredentials{v: aws.Credentials{
		AccessKeyID:     keyID,
		SecretAccessKey: secret,
		SessionToken:    sessionToken,
		Source:          "hexeract sqs static credentials",
	}}
}

type staticCredentials struct{ v aws.Credentials }

// Retrieve implements aws.CredentialsProvider.
func (s staticCredentials) Retrieve(context.Context) (aws.Credentials, error) { return s.v, nil }

// String hides the keys.
func (s staticCredentials) String() string { return "sqs.StaticCredentials(REDACTED)" }

// GoString hides the keys.
func (s staticCredentials) GoString() string { return s.String() }
