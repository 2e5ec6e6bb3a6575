// Package urlopt parses the query parameters of transport URLs: typed
// getters that collect every error, a check for unknown parameters, and
// redaction of credentials from error text.
package urlopt

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Parse parses rawURL without ever putting its credentials in the error.
// prefix names the transport in error messages ("amqp").
func Parse(prefix, rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the whole URL, credentials included
		}
		return nil, fmt.Errorf("%s: malformed URL: %s", prefix, Scrub(err.Error(), rawURL))
	}
	return u, nil
}

// Scrub removes the user info (and the password alone) of rawURL from s.
func Scrub(s, rawURL string) string {
	i := strings.Index(rawURL, "://")
	if i < 0 {
		return s
	}
	rest := rawURL[i+3:]
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	userinfo := rest[:at]
	if userinfo == "" {
		return s
	}
	s = strings.ReplaceAll(s, userinfo, "xxxxx")
	if _, pw, ok := strings.Cut(userinfo, ":"); ok && pw != "" {
		s = strings.ReplaceAll(s, pw, "xxxxx")
		if dec, err := url.PathUnescape(pw); err == nil && dec != "" {
			s = strings.ReplaceAll(s, dec, "xxxxx")
		}
	}
	return s
}

// Query reads the query parameters of a URL, remembering which it used.
type Query struct {
	prefix string
	values url.Values
	known  []string // read by a getter
	passed []string // accepted without reading, kept by Remaining
	errs   []error
}

// NewQuery wraps values; prefix names the transport in error messages.
func NewQuery(prefix string, values url.Values) *Query {
	return &Query{prefix: prefix, values: values}
}

func (q *Query) get(key string) (string, bool) {
	q.known = append(q.known, key)
	vs, ok := q.values[key]
	if !ok {
		return "", false
	}
	if len(vs) != 1 {
		q.errs = append(q.errs, fmt.Errorf("parameter %q given %d times", key, len(vs)))
		return "", false
	}
	return vs[0], true
}

// String returns the value of key, or def when absent.
func (q *Query) String(key, def string) string {
	if v, ok := q.get(key); ok {
		return v
	}
	return def
}

// Int returns the integer value of key, or def when absent.
func (q *Query) Int(key string, def int) int {
	v, ok := q.get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		q.errs = append(q.errs, fmt.Errorf("%s=%q: not an integer", key, v))
		return def
	}
	return n
}

// Bool returns the boolean value of key, or def when absent.
func (q *Query) Bool(key string, def bool) bool {
	v, ok := q.get(key)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		q.errs = append(q.errs, fmt.Errorf("%s=%q: not true or false", key, v))
		return def
	}
	return b
}

// Duration returns the duration value of key (such as 30s), or def when absent.
func (q *Query) Duration(key string, def time.Duration) time.Duration {
	v, ok := q.get(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		q.errs = append(q.errs, fmt.Errorf("%s=%q: not a duration such as 30s", key, v))
		return def
	}
	return d
}

// Known marks keys as accepted without reading them: parameters passed
// through to the underlying client, which Remaining keeps.
func (q *Query) Known(keys ...string) { q.passed = append(q.passed, keys...) }

// Remaining returns the parameters not read by a getter (those marked
// Known among them), for passing through to the underlying client.
func (q *Query) Remaining() url.Values {
	out := url.Values{}
	for k, vs := range q.values {
		if !slices.Contains(q.known, k) {
			out[k] = vs
		}
	}
	return out
}

// Err returns the errors collected so far plus, when strict, one for every
// parameter no getter read.
func (q *Query) Err(strict bool) error {
	errs := q.errs
	if strict {
		var unknown []string
		for k := range q.values {
			if !slices.Contains(q.known, k) && !slices.Contains(q.passed, k) {
				unknown = append(unknown, k)
			}
		}
		slices.Sort(unknown)
		if len(unknown) > 0 {
			known := slices.Concat(q.known, q.passed)
			slices.Sort(known)
			known = slices.Compact(known)
			errs = append(errs, fmt.Errorf("unknown parameter(s) %s (known: %s)", strings.Join(unknown, ", "), strings.Join(known, ", ")))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: bad URL parameters: %w", q.prefix, errors.Join(errs...))
}
