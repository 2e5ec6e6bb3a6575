package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	hsql "github.com/hexeract/hexeract/adapters/sql"
)

// pgDriver reads watermill-sql's tables with SELECTs; a move deletes the
// dead letter's row and inserts the message into the destination's table in
// one transaction.
type pgDriver struct {
	cfg  hsql.Config
	pool *pgxpool.Pool
}

func openPostgres(ctx context.Context, rawURL string) (driver, error) {
	o, err := hsql.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, o.PoolConfig)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &pgDriver{cfg: o.Config, pool: pool}, nil
}

func (d *pgDriver) close() error { d.pool.Close(); return nil }

func (d *pgDriver) prefix() string { return d.cfg.TableName("", "") }

func (d *pgDriver) schemaExpr() (string, []any) {
	if d.cfg.Schema != "" {
		return "$1", []any{d.cfg.Schema}
	}
	return "current_schema()", nil
}

func (d *pgDriver) topics(ctx context.Context) ([]string, error) {
	schema, args := d.schemaExpr()
	rows, err := d.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = `+schema, args...)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	prefix, offsets := d.prefix(), d.cfg.TableName("offsets_", "")
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && !strings.HasPrefix(n, offsets) {
			out = append(out, strings.TrimPrefix(n, prefix))
		}
	}
	return out, nil
}

// table returns the quoted table name of topic when the table exists.
func (d *pgDriver) table(ctx context.Context, kind, topic string) (string, bool, error) {
	var q string
	if kind == "" {
		q = d.cfg.MessagesTable(topic)
	} else {
		q = d.cfg.OffsetsTable(topic)
	}
	var exists bool
	err := d.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, q).Scan(&exists)
	return q, exists, err
}

func (d *pgDriver) groups(ctx context.Context, topic string) ([]string, error) {
	t, ok, err := d.table(ctx, "offsets_", topic)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, `SELECT consumer_group FROM `+t+` ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (d *pgDriver) check(ctx context.Context, topic, group string) error {
	if _, ok, err := d.table(ctx, "", topic); err != nil {
		return err
	} else if !ok {
		return unknownTopic(ctx, topic, d.topics)
	}
	return checkGroup(ctx, topic, group, d.groups)
}

// where returns the condition selecting what group has not acknowledged.
func (d *pgDriver) where(ctx context.Context, topic, group string) (string, []any, error) {
	if group == "" {
		return "TRUE", nil, nil
	}
	t, _, err := d.table(ctx, "offsets_", topic)
	if err != nil {
		return "", nil, err
	}
	var acked int64
	var tx string
	err = d.pool.QueryRow(ctx, `SELECT COALESCE(offset_acked, 0), last_processed_transaction_id::text FROM `+t+` WHERE consumer_group = $1`, group).Scan(&acked, &tx)
	if err != nil {
		return "", nil, fmt.Errorf("dlq: offset of group %q on %q: %w", group, topic, err)
	}
	return `("transaction_id", "offset") > ($1::xid8, $2)`, []any{tx, acked}, nil
}

type pgRow struct {
	tx     string
	offset int64
	msg    *message.Message
}

func (d *pgDriver) rows(ctx context.Context, topic, group string, limit int, fn func(pgRow) error) error {
	t, _, err := d.table(ctx, "", topic)
	if err != nil {
		return err
	}
	cond, args, err := d.where(ctx, topic, group)
	if err != nil {
		return err
	}
	n := 0
	lastTx, lastOff := "0", int64(-1)
	for {
		a := append(slices.Clone(args), lastTx, lastOff)
		q := fmt.Sprintf(`SELECT "transaction_id"::text, "offset", "uuid", "payload", "metadata" FROM %s
			WHERE %s AND ("transaction_id", "offset") > ($%d::xid8, $%d)
			ORDER BY "transaction_id", "offset" LIMIT 500`, t, cond, len(args)+1, len(args)+2)
		rows, err := d.pool.Query(ctx, q, a...)
		if err != nil {
			return err
		}
		var page []pgRow
		for rows.Next() {
			var r pgRow
			var id string
			var payload, md []byte
			if err := rows.Scan(&r.tx, &r.offset, &id, &payload, &md); err != nil {
				rows.Close()
				return err
			}
			r.msg = message.NewMessage(id, payload)
			if len(md) > 0 {
				if err := json.Unmarshal(md, &r.msg.Metadata); err != nil {
					rows.Close()
					return fmt.Errorf("dlq: metadata of %s: %w", id, err)
				}
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
			if n++; limit > 0 && n >= limit {
				return nil
			}
		}
		if len(page) < 500 {
			return nil
		}
		lastTx, lastOff = page[len(page)-1].tx, page[len(page)-1].offset
	}
}

func (d *pgDriver) list(ctx context.Context, topic, group string, limit int, fn func(*message.Message) error) error {
	return d.rows(ctx, topic, group, limit, func(r pgRow) error { return fn(r.msg) })
}

func (d *pgDriver) count(ctx context.Context, topic, group string) (int, error) {
	t, _, err := d.table(ctx, "", topic)
	if err != nil {
		return 0, err
	}
	cond, args, err := d.where(ctx, topic, group)
	if err != nil {
		return 0, err
	}
	var n int
	err = d.pool.QueryRow(ctx, `SELECT count(*) FROM `+t+` WHERE `+cond, args...).Scan(&n)
	return n, err
}

// subscribed: a subscriber's SubscribeInitialize creates the offsets table
// (a publisher creates only the messages table).
func (d *pgDriver) subscribed(ctx context.Context, topic string) (bool, error) {
	_, okM, err := d.table(ctx, "", topic)
	if err != nil {
		return false, err
	}
	_, okO, err := d.table(ctx, "offsets_", topic)
	return okM && okO, err
}

func (d *pgDriver) move(ctx context.Context, topic, group string, limit int, next func(*message.Message) (string, *message.Message, error), done func(*message.Message, string)) error {
	var keys []pgRow
	if err := d.rows(ctx, topic, group, limit, func(r pgRow) error { r.msg = nil; keys = append(keys, r); return nil }); err != nil {
		return err
	}
	t, _, err := d.table(ctx, "", topic)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.moveOne(context.WithoutCancel(ctx), t, k, next, done); err != nil {
			return err
		}
	}
	return nil
}

// moveOne deletes one dead letter and publishes it in one transaction.
func (d *pgDriver) moveOne(ctx context.Context, table string, k pgRow, next func(*message.Message) (string, *message.Message, error), done func(*message.Message, string)) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var id string
	var payload, md []byte
	err = tx.QueryRow(ctx, `DELETE FROM `+table+` WHERE "transaction_id" = $1::xid8 AND "offset" = $2 RETURNING "uuid", "payload", "metadata"`, k.tx, k.offset).Scan(&id, &payload, &md)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // moved by someone else meanwhile
	}
	if err != nil {
		return err
	}
	dead := message.NewMessage(id, payload)
	if len(md) > 0 {
		if err := json.Unmarshal(md, &dead.Metadata); err != nil {
			return fmt.Errorf("dlq: metadata of %s: %w", id, err)
		}
	}
	to, out, err := next(dead)
	if err != nil {
		return err
	}
	pub, err := d.cfg.TxPublisher(tx, nil)
	if err != nil {
		return err
	}
	if err := pub.Publish(to, out); err != nil {
		return fmt.Errorf("dlq: publish %s to %q (left in place): %w", id, to, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("dlq: commit the move of %s (left in place): %w", id, err)
	}
	done(dead, to)
	return nil
}
