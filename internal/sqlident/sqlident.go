// Package sqlident validates table and schema names taken from
// configuration before any SQL is built from them, and quotes them.
package sqlident

import (
	"fmt"
	"strings"
)

// maxLen is PostgreSQL's identifier length limit (NAMEDATALEN-1).
const maxLen = 63

// Name is a validated, possibly schema-qualified, SQL name.
type Name struct {
	Schema string // "" when unqualified
	Table  string
}

// Parse validates name: one or two dot-separated parts, each starting with a
// lower-case letter or underscore followed by lower-case letters, digits or
// underscores, at most 63 bytes. Anything else (quotes, spaces, semicolons,
// upper case, empty parts) is refused with an error that says what is
// allowed, so no configured name can inject SQL.
func Parse(name string) (Name, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return Name{}, fmt.Errorf("invalid SQL name %q: use table or schema.table", name)
	}
	for _, p := range parts {
		if err := check(p); err != nil {
			return Name{}, fmt.Errorf("invalid SQL name %q: %w", name, err)
		}
	}
	if len(parts) == 2 {
		return Name{Schema: parts[0], Table: parts[1]}, nil
	}
	return Name{Table: parts[0]}, nil
}

// MustParse is Parse for names known at compile time; it panics on error.
func MustParse(name string) Name {
	n, err := Parse(name)
	if err != nil {
		panic(err)
	}
	return n
}

func check(p string) error {
	if p == "" {
		return fmt.Errorf("empty identifier")
	}
	if len(p) > maxLen {
		return fmt.Errorf("identifier %q is longer than %d bytes", p, maxLen)
	}
	for i, r := range p {
		switch {
		case r == '_', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return fmt.Errorf("identifier %q may hold only lower-case letters, digits and underscores, and must not start with a digit", p)
		}
	}
	return nil
}

// String returns the name as written: schema.table or table.
func (n Name) String() string {
	if n.Schema == "" {
		return n.Table
	}
	return n.Schema + "." + n.Table
}

// Quoted returns the name quoted for SQL: "schema"."table" or "table".
func (n Name) Quoted() string {
	if n.Schema == "" {
		return `"` + n.Table + `"`
	}
	return `"` + n.Schema + `"."` + n.Table + `"`
}

// Derive returns a name in the same schema whose table is the table with
// suffix appended (for example an index or a companion table), validated.
func (n Name) Derive(suffix string) (Name, error) {
	return Parse(strings.TrimPrefix(Name{Schema: n.Schema, Table: n.Table + suffix}.String(), "."))
}

// Literal returns the unquoted name as a SQL string literal, for catalog
// queries such as to_regclass('schema.table').
func (n Name) Literal() string { return "'" + n.String() + "'" }
