//go:build tools

// Names the pinned program so `go mod tidy` keeps its requirements.
package tools

import _ "github.com/Shopify/toxiproxy/v2/cmd/server"
