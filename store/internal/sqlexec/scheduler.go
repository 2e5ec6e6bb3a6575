package sqlexec

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hexeract/hexeract/store"
)

// SchedulerMeta reads the ce_type, refusal count and last refusal error of
// a scheduled row's JSON metadata, as the PostgreSQL driver's SQL does.
func SchedulerMeta(md []byte) (typ string, refusals int, lastError string) {
	var values map[string]json.RawMessage
	if json.Unmarshal(md, &values) != nil {
		return "", 0, ""
	}
	str := func(k string) string {
		raw, ok := values[k]
		if !ok {
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return string(raw)
	}
	typ, lastError = str("ce_type"), str(store.SchedulerLastErrorKey)
	if n := str(store.SchedulerRefusalsKey); len(n) >= 1 && len(n) <= 6 && strings.Trim(n, "0123456789") == "" {
		refusals, _ = strconv.Atoi(n)
	}
	return typ, refusals, lastError
}

// SchedulerPushBack returns a refused row's new metadata (the refusal
// counted, the error kept) and how long to postpone it: 1 s after the
// first refusal, doubling up to a minute.
func SchedulerPushBack(md []byte, lastError string) ([]byte, time.Duration, error) {
	_, n, _ := SchedulerMeta(md)
	values := map[string]json.RawMessage{}
	if err := json.Unmarshal(md, &values); err != nil || values == nil {
		values = map[string]json.RawMessage{}
	}
	set := func(k, v string) {
		b, _ := json.Marshal(v)
		values[k] = b
	}
	set(store.SchedulerRefusalsKey, strconv.Itoa(n+1))
	set(store.SchedulerLastErrorKey, lastError)
	out, err := json.Marshal(values)
	if err != nil {
		return nil, 0, err
	}
	return out, time.Duration(min(int64(1)<<min(n, 6), 60)) * time.Second, nil
}

// Placeholders returns n "?" placeholders separated by commas.
func Placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// Time scans a DATETIME (time.Time) or an INTEGER of Unix microseconds
// into a UTC time.
type Time struct{ T time.Time }

// Scan implements sql.Scanner.
func (t *Time) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		t.T = time.Time{}
	case time.Time:
		t.T = x.UTC()
	case int64:
		t.T = time.UnixMicro(x).UTC()
	case []byte:
		return t.Scan(string(x))
	case string:
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			t.T = time.UnixMicro(n).UTC()
			return nil
		}
		p, err := time.Parse("2006-01-02 15:04:05.999999", x)
		if err != nil {
			return err
		}
		t.T = p.UTC()
	default:
		return fmt.Errorf("sqlexec: cannot scan %T into a time", v)
	}
	return nil
}

// PushBack is one refused scheduler row to postpone: its new metadata and
// how long from now.
type PushBack struct {
	ID       string
	Metadata []byte
	In       time.Duration
}

// ScanPushBacks reads (id, metadata) rows and returns each with its new
// metadata and delay (SchedulerPushBack); it closes rows.
func ScanPushBacks(rows *sql.Rows, lastError string) ([]PushBack, error) {
	defer func() { _ = rows.Close() }()
	var out []PushBack
	for rows.Next() {
		var id, md string
		if err := rows.Scan(&id, &md); err != nil {
			return nil, err
		}
		nmd, in, err := SchedulerPushBack([]byte(md), lastError)
		if err != nil {
			return nil, err
		}
		out = append(out, PushBack{ID: id, Metadata: nmd, In: in})
	}
	return out, rows.Err()
}
