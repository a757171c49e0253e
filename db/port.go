package db

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"gorm.io/gorm"
)

// createTable finds the tables a migration creates and whether their id
// is a sequence.
var createTable = regexp.MustCompile(`(?s)^\s*CREATE TABLE (\w+) \((\s*id INTEGER PRIMARY KEY AUTOINCREMENT)?`)

// seedTable finds the tables a migration fills itself.
var seedTable = regexp.MustCompile(`^\s*INSERT INTO (\w+) `)

// PortedTables are the tables port-db copies: every table the migrations
// create, in the order they create them (so parents come before the
// children that reference them). sequenced are those whose id column
// is a sequence, which continues after the copied ids.
func PortedTables() (tables []string, sequenced []string) {
	for _, m := range migrations {
		for _, stmt := range m.stmts {
			if match := createTable.FindStringSubmatch(stmt); match != nil {
				tables = append(tables, match[1])
				if match[2] != "" {
					sequenced = append(sequenced, match[1])
				}
			}
		}
	}
	return tables, sequenced
}

// seededTables are the tables a migration fills (settings rows): the
// target's rows are replaced by the source's.
func seededTables() map[string]bool {
	out := map[string]bool{}
	for _, m := range migrations {
		for _, stmt := range m.stmts {
			if match := seedTable.FindStringSubmatch(stmt); match != nil {
				out[match[1]] = true
			}
		}
	}
	return out
}

// portBatch is how many rows port-db copies at a time.
const portBatch = 1000

// ErrTargetNotEmpty refuses to port into a database that holds data.
var ErrTargetNotEmpty = errors.New("db: the target database is not empty")

// Port copies every table of from (SQLite) into to (PostgreSQL, migrated
// and empty) in one transaction, in batches, telling progress after each;
// then it checks that every table holds as many rows on both sides.
func Port(ctx context.Context, from, to *Store, progress func(table string, done, total int64)) error {
	if from.engine != SQLite || to.engine != Postgres {
		return errors.New("db: port copies an SQLite database into a PostgreSQL one")
	}
	tables, sequenced := PortedTables()
	seeded := seededTables()
	fv, _ := from.SchemaVersion(ctx)
	tv, _ := to.SchemaVersion(ctx)
	if fv != tv {
		return fmt.Errorf("db: schema versions differ (%d and %d)", fv, tv)
	}
	for _, table := range tables {
		if seeded[table] {
			continue
		}
		n, err := to.count(ctx, table)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %s has %d rows", ErrTargetNotEmpty, table, n)
		}
	}
	err := to.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, table := range tables {
			if seeded[table] {
				if err := tx.Exec(`DELETE FROM ` + table).Error; err != nil {
					return fmt.Errorf("%s: %w", table, err)
				}
			}
			if err := portTable(ctx, from, tx, table, progress); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		// Sequences continue after the copied ids.
		for _, table := range sequenced {
			if err := tx.Exec(fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', 'id'), COALESCE((SELECT MAX(id) FROM %s), 0) + 1, false)`,
				table, table)).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, table := range tables {
		a, err := from.count(ctx, table)
		if err != nil {
			return err
		}
		b, err := to.count(ctx, table)
		if err != nil {
			return err
		}
		if a != b {
			return fmt.Errorf("db: %s has %d rows in the source and %d in the target", table, a, b)
		}
	}
	return nil
}

func (s *Store) count(ctx context.Context, table string) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Table(table).Count(&n).Error
	return n, err
}

// portTable copies one table by rowid, a batch at a time, turning SQLite's
// integers into PostgreSQL's booleans where the target column is boolean.
func portTable(ctx context.Context, from *Store, tx *gorm.DB, table string, progress func(string, int64, int64)) error {
	total, err := from.count(ctx, table)
	if err != nil {
		return err
	}
	booleans, err := booleanColumns(tx, table)
	if err != nil {
		return err
	}
	var done, last int64
	progress(table, 0, total)
	for {
		var rows []map[string]any
		if err := from.db.WithContext(ctx).Raw(`SELECT rowid AS rowid_, * FROM `+table+` WHERE rowid > ? ORDER BY rowid LIMIT ?`,
			last, portBatch).Scan(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		for _, row := range rows {
			last = row["rowid_"].(int64)
			delete(row, "rowid_")
			for col := range booleans {
				if v, ok := row[col].(int64); ok {
					row[col] = v != 0
				}
			}
		}
		if err := tx.Table(table).Create(&rows).Error; err != nil {
			return err
		}
		done += int64(len(rows))
		progress(table, done, total)
	}
}

// booleanColumns lists the target table's boolean columns.
func booleanColumns(tx *gorm.DB, table string) (map[string]bool, error) {
	var cols []string
	err := tx.Raw(`SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = ? AND data_type = 'boolean'`, table).Scan(&cols).Error
	out := map[string]bool{}
	for _, c := range cols {
		out[strings.ToLower(c)] = true
	}
	return out, err
}
