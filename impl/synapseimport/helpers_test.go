package synapseimport_test

import (
	"database/sql"
	"fmt"
	"testing"
)

func fmtAny(v any) string { return fmt.Sprint(v) }

func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	d, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
