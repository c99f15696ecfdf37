// Package internal holds the dependency anchor used while packages are being written.
package internal

import (
	_ "github.com/MicahParks/jwkset"
	_ "github.com/MicahParks/keyfunc/v3"
	_ "github.com/bits-and-blooms/bloom/v3"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/redis/go-redis/v9"
	_ "go.uber.org/zap"
	_ "golang.org/x/time/rate"
	_ "gopkg.in/yaml.v3"
)
