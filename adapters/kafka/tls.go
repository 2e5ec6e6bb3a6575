package kafka

import "crypto/tls"

func defaultTLS() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS12} }
