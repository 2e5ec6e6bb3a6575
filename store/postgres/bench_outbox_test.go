package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/storetest"
)

// BenchmarkOutbox: go test ./store/postgres -run '^$' -bench BenchmarkOutbox -benchtime=1x
func BenchmarkOutbox(b *testing.B) {
	storetest.BenchOutbox(b, storetest.OutboxBench[pgx.Tx]{
		Harness:        harness(),
		BusinessDDL:    "CREATE TABLE bench_business (id bigserial PRIMARY KEY, v integer NOT NULL)",
		BusinessInsert: "INSERT INTO bench_business (v) VALUES (1)",
		RawDrain: func(tb testing.TB, d store.Driver[pgx.Tx], table string, conns, batch int) {
			pool := d.(*postgres.Driver).Pool()
			sql := `DELETE FROM ` + table + ` d USING (SELECT seq FROM ` + table +
				` ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) s WHERE d.seq = s.seq RETURNING d.seq, d.id, d.topic, d.metadata, d.payload`
			var wg sync.WaitGroup
			for range conns {
				wg.Go(func() {
					for {
						tag, err := pool.Exec(context.Background(), sql, batch)
						if err != nil {
							tb.Error(err)
							return
						}
						if tag.RowsAffected() == 0 {
							return
						}
					}
				})
			}
			wg.Wait()
		},
	})
}
