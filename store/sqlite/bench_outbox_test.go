package sqlite_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/sqlite"
	"github.com/hexeract/hexeract/store/storetest"
)

// BenchmarkOutbox: go test ./store/sqlite -run '^$' -bench BenchmarkOutbox -benchtime=1x
func BenchmarkOutbox(b *testing.B) {
	storetest.BenchOutbox(b, storetest.OutboxBench[*sql.Tx]{
		Harness:        harness(),
		BusinessDDL:    "CREATE TABLE bench_business (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
		BusinessInsert: "INSERT INTO bench_business (v) VALUES (1)",
		RawDrain: func(tb testing.TB, d store.Driver[*sql.Tx], table string, conns, batch int) {
			db := d.(*sqlite.Driver).DB()
			var wg sync.WaitGroup
			for range conns {
				wg.Go(func() {
					for {
						n, err := rawClaimDelete(db, table, batch)
						if err != nil {
							tb.Error(err)
							return
						}
						if n == 0 {
							return
						}
					}
				})
			}
			wg.Wait()
		},
	})
}

// rawClaimDelete is SQLite's bare claim-and-delete: one DELETE ...
// RETURNING of the first batch rows in an IMMEDIATE transaction.
func rawClaimDelete(db *sql.DB, table string, batch int) (int, error) {
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `DELETE FROM `+table+` WHERE seq IN (SELECT seq FROM `+table+` ORDER BY seq LIMIT ?) RETURNING seq, id, topic, metadata, payload`, batch)
	if err != nil {
		return 0, err
	}
	n := 0
	for rows.Next() {
		var seq int64
		var id, topic, md string
		var payload []byte
		if err := rows.Scan(&seq, &id, &topic, &md, &payload); err != nil {
			return 0, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}
