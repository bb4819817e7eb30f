// Package migrations embeds the golang-migrate files of both databases, so a
// service binary migrates its own database at start-up.
package migrations

import "embed"

// FS holds one directory of NNNNNN_name.up.sql / .down.sql files per database.
//
//go:embed pay/*.sql trade/*.sql
var FS embed.FS

// Pay is the directory of the pay database's migrations in FS.
const Pay = "pay"

// Trade is the directory of the trade database's migrations in FS.
const Trade = "trade"
