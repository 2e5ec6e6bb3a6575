package store

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// RedactURL returns url with its password, and the values of query
// parameters whose names hold "password", replaced by "xxxxx", for errors
// and logs.
func RedactURL(rawURL string) string {
	parsed, err := url.Parse(rawURL)
	if err != nil || parsed.Scheme == "" {
		return "(database)"
	}
	if q := parsed.Query(); len(secretParams(q)) > 0 {
		for k := range q {
			if isSecretParam(k) {
				q[k] = []string{"xxxxx"}
			}
		}
		parsed.RawQuery = q.Encode()
	}
	return parsed.Redacted()
}

// RedactText replaces, in text (a driver's error message, say), every
// secret that rawURL holds by "xxxxx".
func RedactText(text, rawURL string) string {
	parsed, err := url.Parse(rawURL)
	if err != nil {
		return text
	}
	secrets := secretParams(parsed.Query())
	if parsed.User != nil {
		if pw, ok := parsed.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "xxxxx")
		}
	}
	return text
}

func isSecretParam(k string) bool {
	return strings.Contains(strings.ToLower(k), "password")
}

func secretParams(q url.Values) []string {
	var out []string
	for k, vs := range q {
		if isSecretParam(k) {
			out = append(out, vs...)
		}
	}
	return out
}

// SortMigrations returns migrations in version order, or an error when a
// version is not positive or appears twice.
func SortMigrations(migrations []Migration) ([]Migration, error) {
	out := append([]Migration(nil), migrations...)
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version <= 0 {
			return nil, fmt.Errorf("migration %q has version %d; versions start at 1", m.Name, m.Version)
		}
		if i > 0 && out[i-1].Version == m.Version {
			return nil, fmt.Errorf("two migrations have version %d", m.Version)
		}
	}
	return out, nil
}
