package redis_test

import (
	"fmt"

	"github.com/hexeract/hexeract/adapters/redis"
)

// Hexeract's parameters are taken out of the URL; the rest goes to go-redis.
func ExampleParseURL() {
	o, err := redis.ParseURL("redis://127.0.0.1:6379/2?group=billing&max_len=100000&dial_timeout=3s")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(o.Group, o.MaxLen, o.ClientOptions.DB, o.ClientOptions.DialTimeout)
	// Output:
	// billing 100000 2 3s
}
