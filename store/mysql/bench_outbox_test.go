package mysql_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/storetest"
)

// BenchmarkOutbox: go test ./store/mysql -run '^$' -bench BenchmarkOutbox -benchtime=1x
func BenchmarkOutbox(b *testing.B) {
	storetest.BenchOutbox(b, storetest.OutboxBench[*sql.Tx]{
		Harness:        harness(),
		BusinessDDL:    "CREATE TABLE bench_business (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)",
		BusinessInsert: "INSERT INTO bench_business (v) VALUES (1)",
		RawDrain: func(tb testing.TB, d store.Driver[*sql.Tx], table string, conns, batch int) {
			db := d.(*mysql.Driver).DB()
			var wg sync.WaitGroup
			for range conns {
				wg.Go(func() {
					for {
						n, err := rawClaimDelete(db, table, batch)
						if err != nil && strings.Contains(err.Error(), "Deadlock") {
							continue // InnoDB picked this transaction as the victim: retry
						}
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

// rawClaimDelete is MySQL's bare claim-and-delete: SELECT ... FOR UPDATE
// SKIP LOCKED, DELETE the rows, COMMIT.
func rawClaimDelete(db *sql.DB, table string, batch int) (int, error) {
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT seq, id, topic, metadata, payload FROM `+table+` ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED`, batch)
	if err != nil {
		return 0, err
	}
	var seqs []any
	for rows.Next() {
		var seq int64
		var id, topic, md string
		var payload []byte
		if err := rows.Scan(&seq, &id, &topic, &md, &payload); err != nil {
			return 0, err
		}
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(seqs) == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE seq IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(seqs)), ", ")+`)`, seqs...); err != nil {
		return 0, err
	}
	return len(seqs), tx.Commit()
}
