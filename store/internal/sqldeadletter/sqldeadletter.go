// Package sqldeadletter holds the dead-letter store's queries, shared by the
// three drivers: each gives its dialect (placeholders, quoting, time
// representation, upsert) and a way to run statements, and implements
// store.DeadLetterExecutor by delegating to [Ops].
package sqldeadletter

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/hexeract/hexeract/store"
)

// Rows is what pgx.Rows and *sql.Rows offer the queries.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// DB runs statements: on a pool or in a transaction.
type DB interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	// Query runs a query.
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
}

// Dialect is what differs between the drivers.
type Dialect struct {
	// Table returns the quoted name of t's table with suffix appended
	// ("" for the dead letters, "_audit" for the audit table).
	Table func(t store.DeadLetterTable, suffix string) string
	// Placeholder returns the i-th (1-based) placeholder: $1 or ?.
	Placeholder func(i int) string
	// Time turns an instant into a statement argument.
	Time func(time.Time) any
	// ScanTime returns a scan destination for an instant column and a
	// function reading it once scanned.
	ScanTime func() (dest any, get func() time.Time)
	// ForUpdate is appended to DeadLetterTake's SELECT (" FOR UPDATE", or
	// "" where the transaction holds the write lock already).
	ForUpdate string
	// Insert runs the upsert statement insertSQL(columns, values) and
	// returns the row's id.
	Insert func(ctx context.Context, db DB, t store.DeadLetterTable, cols []string, args []any) (int64, error)
	// InsertAudit inserts an audit row and returns its id.
	InsertAudit func(ctx context.Context, db DB, t store.DeadLetterTable, cols []string, args []any) (int64, error)
}

// Ops runs the dead-letter operations of one executor.
type Ops struct {
	D  Dialect
	DB DB
}

// Columns are the dead-letter table's columns, in the order rows scan them.
const Columns = "id, message_id, payload, metadata, fault_type, fault_error, fault, topic, handler, consumer_group, attempts, retries, first_failed_at, last_failed_at, dead_at"

// InsertColumns are the columns DeadLetterInsert writes, in order.
func InsertColumns() []string {
	return []string{"message_id", "payload", "metadata", "fault_type", "fault_error", "fault", "topic", "handler", "consumer_group",
		"attempts", "retries", "first_failed_at", "last_failed_at", "dead_at"}
}

// Placeholders returns n placeholders from the first one, joined by commas.
func (o Ops) placeholders(from, n int) string {
	ph := make([]string, n)
	for i := range ph {
		ph[i] = o.D.Placeholder(from + i)
	}
	return strings.Join(ph, ", ")
}

// Insert writes row (see store.DeadLetterExecutor.DeadLetterInsert).
func (o Ops) Insert(ctx context.Context, t store.DeadLetterTable, r *store.DeadLetterRow) (int64, error) {
	if r.MessageID == "" {
		return 0, errors.New("dead letter without a message id")
	}
	md, fault := r.Metadata, r.Fault
	if md == "" {
		md = "{}"
	}
	if fault == "" {
		fault = "{}"
	}
	deadAt := r.DeadAt
	if deadAt.IsZero() {
		deadAt = time.Now()
	}
	first, last := r.FirstFailedAt, r.LastFailedAt
	if first.IsZero() {
		first = deadAt
	}
	if last.IsZero() {
		last = first
	}
	payload := r.Payload
	if payload == nil {
		payload = []byte{}
	}
	args := []any{r.MessageID, payload, md, r.FaultType, r.FaultError, fault, r.Topic, r.Handler, r.Group,
		r.Attempts, r.Retries, o.D.Time(first), o.D.Time(last), o.D.Time(deadAt)}
	return o.D.Insert(ctx, o.DB, t, InsertColumns(), args)
}

// where builds the WHERE clause of f, with placeholders from n+1, and
// returns it (with its leading " WHERE ", or "") and its arguments.
func (o Ops) where(f store.DeadLetterFilter, n int) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, strings.ReplaceAll(cond, "?", o.D.Placeholder(n+len(args))))
	}
	if len(f.IDs) > 0 {
		ph := make([]string, len(f.IDs))
		for i, id := range f.IDs {
			args = append(args, id)
			ph[i] = o.D.Placeholder(n + len(args))
		}
		conds = append(conds, "id IN ("+strings.Join(ph, ", ")+")")
	}
	if f.Topic != "" {
		add("topic = ?", f.Topic)
	}
	if f.Handler != "" || f.Exact {
		add("handler = ?", f.Handler)
	}
	if f.FaultType != "" || f.Exact {
		add("fault_type = ?", f.FaultType)
	}
	if f.ErrorContains != "" {
		add("LOWER(fault_error) LIKE ? ESCAPE '!'", "%"+escapeLike(strings.ToLower(f.ErrorContains))+"%")
	}
	if !f.Since.IsZero() {
		add("dead_at >= ?", o.D.Time(f.Since))
	}
	if !f.Until.IsZero() {
		add("dead_at < ?", o.D.Time(f.Until))
	}
	if f.AfterID > 0 {
		add("id > ?", f.AfterID)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func escapeLike(s string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(s)
}

func limit(n int) string {
	if n <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(n)
}

// List returns the rows f selects.
func (o Ops) List(ctx context.Context, t store.DeadLetterTable, f store.DeadLetterFilter) ([]store.DeadLetterRow, error) {
	w, args := o.where(f, 0)
	rows, err := o.DB.Query(ctx, "SELECT "+Columns+" FROM "+o.D.Table(t, "")+w+" ORDER BY id"+limit(f.Limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.DeadLetterRow
	for rows.Next() {
		r, err := o.scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

func (o Ops) scanRow(rows Rows) (*store.DeadLetterRow, error) {
	var r store.DeadLetterRow
	first, getFirst := o.D.ScanTime()
	last, getLast := o.D.ScanTime()
	dead, getDead := o.D.ScanTime()
	var md, fault any = new(string), new(string)
	if err := rows.Scan(&r.ID, &r.MessageID, &r.Payload, md, &r.FaultType, &r.FaultError, fault, &r.Topic, &r.Handler, &r.Group,
		&r.Attempts, &r.Retries, first, last, dead); err != nil {
		return nil, err
	}
	r.Metadata, r.Fault = *md.(*string), *fault.(*string)
	r.FirstFailedAt, r.LastFailedAt, r.DeadAt = getFirst(), getLast(), getDead()
	return &r, nil
}

// IDs returns the ids of the rows f selects.
func (o Ops) IDs(ctx context.Context, t store.DeadLetterTable, f store.DeadLetterFilter) ([]int64, error) {
	w, args := o.where(f, 0)
	rows, err := o.DB.Query(ctx, "SELECT id FROM "+o.D.Table(t, "")+w+" ORDER BY id"+limit(f.Limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// Counts counts the rows f selects per topic.
func (o Ops) Counts(ctx context.Context, t store.DeadLetterTable, f store.DeadLetterFilter) ([]store.DeadLetterCount, error) {
	f.Limit = 0
	w, args := o.where(f, 0)
	rows, err := o.DB.Query(ctx, "SELECT topic, COUNT(*), MIN(dead_at) FROM "+o.D.Table(t, "")+w+" GROUP BY topic ORDER BY topic", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.DeadLetterCount
	for rows.Next() {
		var c store.DeadLetterCount
		oldest, get := o.D.ScanTime()
		if err := rows.Scan(&c.Topic, &c.Count, oldest); err != nil {
			return nil, err
		}
		c.Oldest = get()
		out = append(out, c)
	}
	return out, rows.Err()
}

// Groups counts the rows f selects per fault type and handler.
func (o Ops) Groups(ctx context.Context, t store.DeadLetterTable, f store.DeadLetterFilter) ([]store.DeadLetterGroup, error) {
	f.Limit = 0
	w, args := o.where(f, 0)
	tbl := o.D.Table(t, "")
	rows, err := o.DB.Query(ctx, "SELECT fault_type, handler, COUNT(*), MIN(first_failed_at), MAX(last_failed_at), MAX(id) FROM "+tbl+w+
		" GROUP BY fault_type, handler ORDER BY COUNT(*) DESC, fault_type, handler", args...)
	if err != nil {
		return nil, err
	}
	var out []store.DeadLetterGroup
	var newest []int64
	for rows.Next() {
		var g store.DeadLetterGroup
		first, getFirst := o.D.ScanTime()
		last, getLast := o.D.ScanTime()
		var id int64
		if err := rows.Scan(&g.FaultType, &g.Handler, &g.Count, first, last, &id); err != nil {
			rows.Close()
			return nil, err
		}
		g.FirstSeen, g.LastSeen = getFirst(), getLast()
		out = append(out, g)
		newest = append(newest, id)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, err
	}
	for i, id := range newest {
		rows, err := o.DB.Query(ctx, "SELECT fault_error FROM "+tbl+" WHERE id = "+o.D.Placeholder(1), id)
		if err != nil {
			return nil, err
		}
		if rows.Next() {
			err = rows.Scan(&out[i].Example)
		}
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Take returns row id, locked until the transaction ends.
func (o Ops) Take(ctx context.Context, t store.DeadLetterTable, id int64) (*store.DeadLetterRow, error) {
	rows, err := o.DB.Query(ctx, "SELECT "+Columns+" FROM "+o.D.Table(t, "")+" WHERE id = "+o.D.Placeholder(1)+o.D.ForUpdate, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	return o.scanRow(rows)
}

// Delete deletes the rows with the given ids.
func (o Ops) Delete(ctx context.Context, t store.DeadLetterTable, ids []int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return o.DB.Exec(ctx, "DELETE FROM "+o.D.Table(t, "")+" WHERE id IN ("+o.placeholders(1, len(ids))+")", args...)
}

// Update replaces the payload and metadata of row id.
func (o Ops) Update(ctx context.Context, t store.DeadLetterTable, id int64, payload []byte, metadata string) (bool, error) {
	if payload == nil {
		payload = []byte{}
	}
	n, err := o.DB.Exec(ctx, "UPDATE "+o.D.Table(t, "")+" SET payload = "+o.D.Placeholder(1)+", metadata = "+o.D.Placeholder(2)+
		" WHERE id = "+o.D.Placeholder(3), payload, metadata, id)
	return n > 0, err
}

// AuditColumns are the audit columns InsertAudit writes, in order.
func AuditColumns() []string {
	return []string{"at", "operator", "action", "selector", "affected", "outcome"}
}

// AuditInsert writes an audit row.
func (o Ops) AuditInsert(ctx context.Context, t store.DeadLetterTable, a *store.DeadLetterAudit) (int64, error) {
	at := a.At
	if at.IsZero() {
		at = time.Now()
	}
	sel := a.Selector
	if sel == "" {
		sel = "{}"
	}
	return o.D.InsertAudit(ctx, o.DB, t, AuditColumns(), []any{o.D.Time(at), a.Operator, a.Action, sel, a.Count, a.Outcome})
}

// AuditUpdate adds n to audit row id and sets its outcome.
func (o Ops) AuditUpdate(ctx context.Context, t store.DeadLetterTable, id, n int64, outcome string) error {
	tbl := o.D.Table(t, "_audit")
	var err error
	if outcome == "" {
		_, err = o.DB.Exec(ctx, "UPDATE "+tbl+" SET affected = affected + "+o.D.Placeholder(1)+" WHERE id = "+o.D.Placeholder(2), n, id)
	} else {
		_, err = o.DB.Exec(ctx, "UPDATE "+tbl+" SET affected = affected + "+o.D.Placeholder(1)+", outcome = "+o.D.Placeholder(2)+
			" WHERE id = "+o.D.Placeholder(3), n, outcome, id)
	}
	return err
}

// AuditList returns the newest audit rows first.
func (o Ops) AuditList(ctx context.Context, t store.DeadLetterTable, n int) ([]store.DeadLetterAudit, error) {
	rows, err := o.DB.Query(ctx, "SELECT id, at, operator, action, selector, affected, outcome FROM "+o.D.Table(t, "_audit")+" ORDER BY id DESC"+limit(n))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.DeadLetterAudit
	for rows.Next() {
		var a store.DeadLetterAudit
		at, get := o.D.ScanTime()
		var sel any = new(string)
		if err := rows.Scan(&a.ID, at, &a.Operator, &a.Action, sel, &a.Count, &a.Outcome); err != nil {
			return nil, err
		}
		a.At, a.Selector = get(), *sel.(*string)
		out = append(out, a)
	}
	return out, rows.Err()
}

// InsertSQL returns "INSERT INTO table (cols) VALUES (placeholders)".
func InsertSQL(d Dialect, table string, cols []string) string {
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + Ops{D: d}.placeholders(1, len(cols)) + ")"
}

// UpsertSet returns "col = excluded.col, ..." (or MySQL's VALUES(col)
// through set) for the columns a redelivered dead letter overwrites: all
// but first_failed_at.
func UpsertSet(set func(col string) string) string {
	var parts []string
	for _, c := range InsertColumns() {
		switch c {
		case "message_id", "handler", "consumer_group", "first_failed_at":
			continue
		}
		parts = append(parts, c+" = "+set(c))
	}
	return strings.Join(parts, ", ")
}

// Querier is what *sql.DB and *sql.Tx offer (sqlexec.Querier).
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// SQL adapts a database/sql querier to DB.
func SQL(q Querier) DB { return sqlDB{q} }

type sqlDB struct{ q Querier }

func (s sqlDB) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlDB) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := s.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// ExecInsertID runs an INSERT through q and returns LastInsertId (MySQL).
func ExecInsertID(ctx context.Context, q Querier, query string, args []any) (int64, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// QueryID runs an INSERT ... RETURNING id through db.
func QueryID(ctx context.Context, db DB, query string, args []any) (int64, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var id int64
	if rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if id == 0 {
		return 0, errors.New("insert returned no id")
	}
	return id, nil
}
