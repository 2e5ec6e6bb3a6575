package sql_test

import (
	"fmt"

	hsql "github.com/hexeract/hexeract/adapters/sql"
)

// Hexeract's parameters are taken out of the URL; the rest goes to pgx.
func ExampleParseURL() {
	o, err := hsql.ParseURL("postgres://app:secret@db:5432/shop?sslmode=disable&group=billing&schema=bus")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(o.Group, o.PoolConfig.ConnConfig.Database)
	fmt.Println(o.MessagesTable("orders.placed"))
	// Output:
	// billing shop
	// "bus"."hexeract_bus_orders.placed"
}
