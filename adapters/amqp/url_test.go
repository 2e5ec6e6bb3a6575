package amqp_test

import (
	"testing"
	"time"

	"github.com/hexeract/hexeract/adapters/amqp"
)

func TestParseURL(t *testing.T) {
	cfg, err := amqp.ParseURL("amqp://guest:pw@127.0.0.1:5672/shop?group=billing&prefetch=16&confirm=false&channel_pool=4&reconnect_max=2s&connection_name=billing-api&heartbeat=5")
	if err != nil {
		t.Fatal(err)
	}
	want := amqp.Config{URL: "amqp://guest:pw@127.0.0.1:5672/shop?heartbeat=5", Group: "billing", Prefetch: 16, NoConfirm: true,
		ChannelPoolSize: 4, ReconnectMaxInterval: 2 * time.Second, ConnectionName: "billing-api"}
	if cfg != want {
		t.Errorf("ParseURL:\n got %+v\nwant %+v", cfg, want)
	}
	wc := cfg.WatermillConfig()
	if got := wc.Connection.AmqpConfig.Properties["connection_name"]; got != "billing-api" {
		t.Errorf("connection_name property = %v", got)
	}
	if wc.Publish.ChannelPoolSize != 4 || wc.Publish.ConfirmDelivery {
		t.Errorf("publish config = %+v", wc.Publish)
	}
	def, err := amqp.ParseURL("amqp://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := def.WatermillConfig().Connection.AmqpConfig.Properties["connection_name"].(string); name == "" {
		t.Error("no default connection name")
	}
}
